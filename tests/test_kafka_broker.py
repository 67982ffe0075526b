"""The Kafka runtime against real brokers (noida-db and tansu, started here): `permitwatch worker`
processes give the alerts of `permitwatch replay`, survive kill -9, share partitions, dead-letter
what is invalid, and fire deadlines while no event arrives."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from models.views import ActionRecord
from streams.embedded.store import Store
from streams.kafka.reference import publish_reference
from streams.kafka.stages import alert_value
from streams.kafka.topology import Topology, ensure_topics
from streams.metrics import Metrics
from tests.brokers import Broker, WorkerProcess, produce, read_topic, start
from tests.factory import CaseEvents, moment
from tests.harness import active, run
from tests.kafka_expect import Expected, with_exemption
from tests.test_engine import ITEMS, UNTIL, scenario

BROKERS = ["noida-db", "tansu"]
PARTITIONS = 4
INVALID = [b"{not json", b'{"specversion": "1.0", "type": "cn.gov.licensing.nonsense"}']


@pytest.fixture(scope="session", params=BROKERS)
def broker(request, tmp_path_factory):
    started = start(request.param, tmp_path_factory.mktemp(request.param))
    yield started
    started.stop()


class Deployment:
    """One test's topics (its own prefix) on a shared broker, and its workers."""

    def __init__(self, broker: Broker, directory: Path):
        self.broker = broker
        self.directory = directory
        self.topology = Topology(f"t{uuid.uuid4().hex[:8]}", PARTITIONS)
        self.workers: list[WorkerProcess] = []
        asyncio.run(self._prepare())

    async def _prepare(self) -> None:
        await ensure_topics(self.broker.bootstrap, self.topology)
        await publish_reference(self.broker.bootstrap, self.topology, ITEMS, [],
                                {"max_batch_size": self.broker.max_batch_size} if self.broker.max_batch_size else {})

    def send(self, events: list, invalid: list[bytes] = ()) -> None:
        records = [(e.subject.encode(), orjson.dumps(e.model_dump(mode="json"))) for e in events]
        records += [(b"bad", raw) for raw in invalid]
        asyncio.run(produce(self.broker, self.topology.events, records))

    def worker(self, clock_start: str, instance: str | None = None, store: str = "memory",
               state: str | None = None) -> WorkerProcess:
        worker = WorkerProcess(self.broker, self.directory, self.topology.prefix, PARTITIONS, clock_start,
                               f"worker-{len(self.workers)}", store, state, instance).start()
        self.workers.append(worker)
        return worker

    def read(self, topic: str) -> list:
        return asyncio.run(read_topic(self.broker, topic))

    def values(self, topic: str) -> list[bytes]:
        return [record.value for record in self.read(topic)]

    def wait_for(self, expected: Expected, seconds: float = 150) -> None:
        deadline = time.monotonic() + seconds
        problems: list[str] = []
        while time.monotonic() < deadline:
            problems = expected.differences(self.values(self.topology.alerts), self.values(self.topology.referrals))
            if not problems:
                return
            self._check_alive()
            time.sleep(1)
        raise AssertionError(f"after {seconds} s: {problems}; logs in {self.directory}")

    def _check_alive(self) -> None:
        for worker in self.workers:
            if worker.process.poll() not in (None, -9):
                raise AssertionError(f"{worker.name} exited {worker.process.returncode}: "
                                     f"{worker.log.read_text(errors='replace')[-3000:]}")

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


@pytest.fixture
def deployment(broker, tmp_path):
    deployed = Deployment(broker, tmp_path)
    yield deployed
    deployed.stop()


def city(seed: int, cases: int) -> list:
    return with_exemption(scenario(seed, cases=cases))


def test_one_worker_gives_the_alerts_of_replay_and_dead_letters_the_invalid(deployment):
    events = city(7, 40)
    deployment.send(events, INVALID)
    deployment.worker(moment(UNTIL).isoformat())
    deployment.wait_for(Expected.of(events))
    letters = [orjson.loads(v) for v in deployment.values(deployment.topology.dead_letter)]
    by_category = {d["category"]: d for d in letters}
    assert {"invalid_json", "unknown_type", "no_referral"} <= set(by_category)
    bad = by_category["invalid_json"]
    assert bad["raw"] == "{not json" and bad["source"]["topic"] == deployment.topology.events
    assert "SZ-NONE" in by_category["no_referral"]["reason"]


@pytest.mark.parametrize("store", ["memory", "rocksdb"])
def test_kill_9_mid_stream_then_another_worker_loses_nothing(deployment, store):
    """The successor takes the killed worker's place in the group by static membership, as a
    restarted pod does. With RocksDB it gets the killed worker's state directory, as a pod keeps
    its volume, whose files may hold writes the changelog lacks; it discards them and, like the
    memory store, restores its tables from the changelogs. (noida-db
    0.2.3 never evicts a killed dynamic member: a successor without the instance id would wait
    forever. tansu evicts it after the session timeout.)"""
    events = city(8, 300)
    expected = Expected.of(events)
    deployment.send(events)
    first = deployment.worker(moment(UNTIL).isoformat(), instance="worker-a", store=store, state="pod-a")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not deployment.values(deployment.topology.alerts):
        time.sleep(0.2)
    first.kill()
    seen_at_kill = set(deployment.values(deployment.topology.alerts))
    assert seen_at_kill and seen_at_kill != expected.alerts, "the kill was not mid-stream"
    successor = deployment.worker(moment(UNTIL).isoformat(), instance="worker-a", store=store, state="pod-a")
    deployment.wait_for(expected)
    if store == "rocksdb":
        assert "discarding local table files" in successor.log.read_text(errors="replace")
    alerts = deployment.values(deployment.topology.alerts)
    assert len(alerts) >= len(expected.alerts)  # repeats, if any, are identical records (checked above)


def test_two_workers_share_the_partitions(deployment):
    events = city(9, 80)
    deployment.send(events)
    first, second = deployment.worker(moment(UNTIL).isoformat()), deployment.worker(moment(UNTIL).isoformat())
    deployment.wait_for(Expected.of(events))
    assert first.partitions_loaded() and second.partitions_loaded(), "one worker did all the work"


def test_a_deadline_fires_while_no_event_arrives(deployment):
    """The worker's clock starts 30 s before the decision deadline of a case that then stays
    silent: the warning fires at once, the overdue alert when the deadline passes."""
    case = CaseEvents("SZ-QUIET", item="ITEM-STD")
    events = [case.submitted("2026-03-02 09:00"), case.accepted("2026-03-02 10:00")]
    [overdue] = active(run(events, until="2026-12-31", catalog=ITEMS), "PW-001")
    deployment.send(events)
    deployment.worker((overdue.detected_at - timedelta(seconds=30)).isoformat())
    found = _wait_rule(deployment, "PW-002", 90)
    assert not [a for a in found if a["rule"] == "PW-001"], "PW-001 fired before its deadline"
    found = _wait_rule(deployment, "PW-001", 90)
    assert [a for a in found if a["rule"] == "PW-001"] == [orjson.loads(alert_value(overdue))]


def _wait_rule(deployment: Deployment, rule: str, seconds: float) -> list[dict]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = [orjson.loads(v) for v in deployment.values(deployment.topology.alerts)]
        if any(a["rule"] == rule for a in found):
            return found
        deployment._check_alive()
        time.sleep(0.5)
    raise AssertionError(f"no {rule} in {seconds} s")



def test_records_the_consumer_skipped_are_read_from_the_broker(broker):
    """The gap guard (streams/kafka/gaps.py): a record beyond the offset a stage needs makes the
    worker read the records in between from the broker; offsets where the log holds nothing are
    a real gap."""
    from streams.kafka.gaps import GapGuard

    topic = f"gaps-{uuid.uuid4().hex[:8]}"
    asyncio.run(produce(broker, topic, [(b"k", b"%d" % i) for i in range(10)]))

    async def scenario():
        guard = GapGuard(broker.bootstrap, Metrics("kafka").gap_refills)

        async def missing(offset, needed):
            return [(r.offset, r.value) async for r in guard.missing(topic, 0, offset, needed)]

        assert await missing(7, needed=3) == [(3, b"3"), (4, b"4"), (5, b"5"), (6, b"6")]
        assert await missing(3, needed=3) == []
        assert await missing(2, needed=3) == [], "a redelivery, not a gap"
        assert await missing(12, needed=10) == [], "nothing between: a real gap"
        both = await asyncio.gather(missing(2, needed=0), missing(9, needed=8))
        assert both == [[(0, b"0"), (1, b"1")], [(8, b"8")]], "two agents meeting gaps at once"
        assert guard.refills._value.get() == 3

    asyncio.run(scenario())


def test_the_api_over_kafka_ingests_follows_the_topics_and_records_exemptions(deployment, tmp_path):
    """`permitwatch api --kafka`: events posted to the API reach the workers through the events
    topic, their alerts and dead letters come back into the API's read model, an operator's
    exemption makes the worker publish a new referral version, and a restarted API resumes from
    its stored positions without repeating a record."""
    from fastapi.testclient import TestClient

    from api.server import build_kafka_api
    from api.settings import ServerSettings

    events = [e for e in city(10, 20) if e.subject not in ("SZ-LATE", "SZ-NONE")]
    late = CaseEvents("SZ-LATE", item="ITEM-STD")
    events = sorted([*events, late.submitted("2026-03-02 09:00"), late.accepted("2026-03-02 10:00"),
                     late.decided("2026-05-20")], key=lambda e: e.time)
    expected = Expected.of(events)
    deployment.worker(moment(UNTIL).isoformat())
    settings = ServerSettings(kafka=deployment.broker.bootstrap, topic_prefix=deployment.topology.prefix,
                              partitions=PARTITIONS, data_dir=tmp_path / "api", clock_start=moment(UNTIL),
                              producer_max_batch_size=deployment.broker.max_batch_size)

    def stored(api, table: str) -> list[bytes]:
        return [row[0] for row in api.monitor.store.reader.execute(f"SELECT record FROM {table} ORDER BY seq")]

    def stored_alerts(api) -> list[bytes]:
        return stored(api, "alerts")

    api = build_kafka_api(settings)
    try:
        with TestClient(api.app) as client:
            ingest = {"Authorization": f"Bearer {api.new_tokens['ingest']}"}
            operator = {"Authorization": f"Bearer {api.new_tokens['operator']}"}
            _until(lambda: client.get("/readyz").json()["ready"], "the API connected and caught up")
            body = b"\n".join(orjson.dumps(e.model_dump(mode="json")) for e in events) + b"\n{not json\n"
            posted = client.post("/events", content=body, headers={**ingest, "Content-Type": "application/x-ndjson"})
            assert posted.status_code == 202, posted.text
            assert posted.json()["accepted"] == len(events) and posted.json()["rejected"][0]["category"] == "invalid_json"
            _until(lambda: not expected.differences(stored_alerts(api), stored(api, "referrals")),
                   "the alerts and referrals of replay in the read model")
            assert client.get("/readyz").json()["ready"]
            page = client.get("/alerts", params={"case": "SZ-LATE"}, headers=operator).json()
            assert {a["alert"]["rule"] for a in page["items"]} >= {"PW-001"}
            [referral] = [r for r in client.get("/referrals", headers=operator).json()["items"]
                          if r["case_id"] == "SZ-LATE"]
            exempted = client.post(f"/referrals/{referral['referral_id']}/exemption", headers=operator,
                                   json={"ground": "force_majeure", "reason": "台风停工三日"})
            assert exempted.status_code == 201, exempted.text
            assert exempted.json()["version"] > referral["version"] and exempted.json()["status"] == "exempt"
            letters = api.monitor.store.reader.execute("SELECT category FROM dead_letters").fetchall()
            assert ("invalid_json",) in letters
        count = len(stored_alerts(api))
    finally:
        api.close()
    again = build_kafka_api(settings)
    try:
        with TestClient(again.app) as client:
            _until(lambda: client.get("/readyz").json()["ready"], "the restarted API ready")
            assert len(stored_alerts(again)) == count, "a restarted API stored records again"
    finally:
        again.close()


def test_operators_actions_reach_every_api_instance_and_survive_a_rebuilt_read_model(deployment, tmp_path):
    """Two `permitwatch api --kafka` instances behind one balancer: an action taken on either is
    in both audit trails, under the same sequence number, and a third instance started on an
    empty data directory rebuilds them all from the actions topic. A read model from before the
    topic existed publishes its own actions there on its first start."""
    from fastapi.testclient import TestClient

    from api.server import build_kafka_api
    from api.settings import ServerSettings

    events = city(11, 10)
    deployment.send(events)
    deployment.worker(moment(UNTIL).isoformat())

    def settings(name: str) -> ServerSettings:
        return ServerSettings(kafka=deployment.broker.bootstrap, topic_prefix=deployment.topology.prefix,
                              partitions=PARTITIONS, data_dir=tmp_path / name, clock_start=moment(UNTIL),
                              producer_max_batch_size=deployment.broker.max_batch_size)

    older = Store(settings("api-1").database)  # a read model from before actions had a topic
    older.action(ActionRecord(seq=0, target_kind="alert", target_id="PW-OLD-1", action="acknowledge",
                              actor="old.operator", at=moment("2026-03-01 09:00")))
    older.close()
    apis = [build_kafka_api(settings(name)) for name in ("api-1", "api-2")]
    clients = [TestClient(api.app) for api in apis]
    try:
        for client in clients:
            client.__enter__()
        operator = [{"Authorization": f"Bearer {api.new_tokens['operator']}"} for api in apis]

        def trail(n: int, alert_id: str) -> list[tuple]:
            answer = clients[n].get(f"/alerts/{alert_id}/actions", headers=operator[n]).json()
            return [(a["seq"], a["action"], a["actor"]) for a in answer]

        def an_alert(n: int) -> str | None:
            items = clients[n].get("/alerts", headers=operator[n]).json()["items"]
            return items[0]["alert"]["alert_id"] if items else None

        _until(lambda: an_alert(0) and an_alert(1), "alerts in both read models")
        alert_id = an_alert(0)
        _until(lambda: clients[1].get(f"/alerts/{alert_id}/actions", headers=operator[1]).status_code == 200,
               "the alert in the second read model")
        acked = clients[0].post(f"/alerts/{alert_id}/ack", headers=operator[0])
        assert acked.status_code == 200, acked.text
        assigned = clients[1].post(f"/alerts/{alert_id}/assign", headers=operator[1], json={"assignee": "zhang.san"})
        assert assigned.status_code == 200, assigned.text
        assert assigned.json()["seq"] == acked.json()["seq"] + 1
        both = [(acked.json()["seq"], "acknowledge", "operator"), (assigned.json()["seq"], "assign", "operator")]
        assert trail(1, alert_id) == both, "each instance shows its own action at once"
        _until(lambda: trail(0, alert_id) == both, "the other instance's action in the first audit trail")
        moved = [(1, "acknowledge", "old.operator")]
        assert trail(0, "PW-OLD-1") == trail(1, "PW-OLD-1") == moved, "the older read model's action, on the topic"
    finally:
        for client in clients:
            client.__exit__(None, None, None)
        for api in apis:
            api.close()
    rebuilt = build_kafka_api(settings("api-3"))
    try:
        with TestClient(rebuilt.app) as client:
            _until(lambda: client.get("/readyz").json()["ready"], "the third instance caught up")
            operator3 = {"Authorization": f"Bearer {rebuilt.new_tokens['operator']}"}
            for target, expected in ((alert_id, both), ("PW-OLD-1", moved)):
                answer = client.get(f"/alerts/{target}/actions", headers=operator3).json()
                assert [(a["seq"], a["action"], a["actor"]) for a in answer] == expected
    finally:
        rebuilt.close()


def _until(condition, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"not reached in {seconds} s: {what}")
