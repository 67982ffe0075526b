"""The Kafka runtime against real brokers (noida-db and tansu, started here): `permitwatch worker`
processes give the alerts of `permitwatch replay`, survive kill -9, share partitions, dead-letter
what is invalid, and fire deadlines while no event arrives."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from permitwatch.models.views import ActionRecord
from permitwatch.streams.kafka.reference import publish_reference
from permitwatch.streams.kafka.stages import alert_value
from permitwatch.streams.kafka.topology import Topology, TopologyError, ensure_topics, topic_configs
from permitwatch.streams.kafka.wire import CONTROL_HEADER, REDO_PART_PREFIX
from permitwatch.streams.metrics import Metrics
from permitwatch.streams.store import Store
from tests.brokers import (
    Broker,
    WorkerProcess,
    alter_configs,
    free_port,
    produce,
    produce_records,
    read_topic,
    start,
    stop_process,
)
from tests.factory import CaseEvents, moment
from tests.harness import active, run
from tests.kafka_expect import Expected, with_exemption
from tests.scenarios import ITEMS, UNTIL, scenario

REPO = Path(__file__).resolve().parent.parent
DOCS_KAFKA = REPO / "docs" / "kafka.md"
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
        """At once: the test's topics and state are thrown away. (A graceful stop waited, worker by
        worker, for the batch in hand and faust's shutdown: 1 to 8 s each.)"""
        for worker in self.workers:
            worker.kill()


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
    worker = deployment.worker(moment(UNTIL).isoformat())
    deployment.wait_for(Expected.of(events))
    letters = [orjson.loads(v) for v in deployment.values(deployment.topology.dead_letter)]
    by_category = {d["category"]: d for d in letters}
    assert {"invalid_json", "unknown_type", "no_referral"} <= set(by_category)
    bad = by_category["invalid_json"]
    assert bad["raw"] == "{not json" and bad["source"]["topic"] == deployment.topology.events
    assert "SZ-NONE" in by_category["no_referral"]["reason"]
    # The records that grow with a case's red alerts may pass Kafka's default 1 MB (noida-db refuses
    # more, as Kafka does): the referrals topic and faust's city changelog take more, and so do the
    # events and their dead letters, which wrap an event's bytes escaped.
    topology = deployment.topology
    city_changelog = f"{topology.prefix}-workers-city-changelog"
    configs = asyncio.run(topic_configs(deployment.broker.bootstrap, [
        topology.events, topology.dead_letter, topology.referrals, city_changelog]))
    assert {configs[topic].get("max.message.bytes") for topic in configs} == {str(8 << 20)}, configs
    # SIGTERM (a pod stopped, a rolling update) ends the worker by itself, at once: until
    # 2026-12-01 its consumer thread died on the paced fetch's cancellation and it hung until SIGKILL.
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(timeout=20) == 0, worker.log.read_text(errors="replace")[-3000:]
    assert "Exception in thread" not in worker.log.read_text(errors="replace")


def until_stored(worker: WorkerProcess, table: str, partition: int, seconds: float = 120) -> None:
    """Until the worker's RocksDB files record a changelog offset for the table's partition (what
    a successor's restore starts after), read as faust keeps it; RocksDB lets a second process
    read its files while the worker writes them."""
    from rocksdict import AccessType, Options, Rdict

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for path in (worker.directory / f"{worker.state}-state").glob(f"**/{table}-{partition}.db"):
            try:
                db = Rdict(str(path), options=Options(raw_mode=True), access_type=AccessType.read_only())
            except Exception as exc:  # being created: its CURRENT file is not written yet
                if "No such file or directory" not in str(exc):
                    raise
                continue
            try:
                if db.get(b"__faust\x00offset__") is not None:
                    return
            finally:
                db.close()
        time.sleep(0.1)
    raise AssertionError(f"no local changelog offset for {table} {partition} after {seconds} s")


@functools.cache
def killed_city() -> tuple[list, Expected]:
    """The kill test's events and what replay makes of them: 2.4 s to compute, the same for every
    broker and store."""
    events = city(8, 300)
    return events, Expected.of(events)


@pytest.mark.parametrize("store", ["memory", "rocksdb"])
def test_kill_9_mid_stream_then_another_worker_loses_nothing(deployment, store):
    """The worker is killed once its tables have been written (with RocksDB: once its local files
    hold a batch of the city stage, the slower one), before it has judged the whole log. The
    successor takes its place in the group by static membership, as a restarted pod does. With
    RocksDB it gets the killed worker's state directory, as a pod keeps its volume: its files hold
    what the changelogs had, through the offsets they record, and it restores only the rest. (noida-db 0.2.3 never evicts a killed dynamic member: a successor
    without the instance id would wait forever. tansu evicts it after the session timeout.)"""
    if store == "rocksdb" and deployment.broker.name != "noida-db":
        pytest.skip("local files and the restore after them are the same on every broker; one run is enough")
    events, expected = killed_city()
    deployment.send(events)
    first = deployment.worker(moment(UNTIL).isoformat(), instance="worker-a", store=store, state="pod-a")
    if store == "rocksdb":
        until_stored(first, "city", 0)
    else:
        deadline = time.monotonic() + 120
        while not deployment.values(f"{deployment.topology.prefix}-workers-city-changelog"):
            assert time.monotonic() < deadline, f"nothing in the city changelog; logs in {deployment.directory}"
            time.sleep(0.1)
    first.kill()
    seen_at_kill = set(deployment.values(deployment.topology.alerts))
    assert seen_at_kill and seen_at_kill != expected.alerts, "the kill was not mid-stream"
    successor = deployment.worker(moment(UNTIL).isoformat(), instance="worker-a", store=store, state="pod-a")
    deployment.wait_for(expected)
    if store == "rocksdb":
        local = [line for line in successor.log.read_text(errors="replace").splitlines() if "local table files" in line]
        assert local and "city 0 through" in local[0], local
    alerts = deployment.values(deployment.topology.alerts)
    assert len(alerts) >= len(expected.alerts)  # repeats, if any, are identical records (checked above)


def test_two_workers_share_the_partitions(deployment):
    events = city(9, 80)
    deployment.send(events)
    # Static members, as deploy/k8s runs them: two dynamic members joining at once left noida-db
    # 0.2.3 rejoining both at the same generation forever, no leader elected (a third of runs).
    first, second = (deployment.worker(moment(UNTIL).isoformat(), instance=f"sharing-{n}") for n in range(2))
    deployment.wait_for(Expected.of(events))
    # A worker may finish the log before the group has given the other its partitions; the
    # ticks then reach them there.
    deadline = time.monotonic() + 30
    while not (first.partitions_loaded() and second.partitions_loaded()) and time.monotonic() < deadline:
        time.sleep(1)
    assert first.partitions_loaded() and second.partitions_loaded(), (
        "one worker did all the work; what each heard of the group:\n" + "\n".join(
            f"{worker.name}: " + " | ".join(line[-160:] for line in worker.log.read_text(errors="replace").splitlines()
                                            if any(word in line for word in ("generation", "assigned", "judging")))
            for worker in (first, second)))


def test_a_referral_larger_than_kafkas_default_record_size_is_published(deployment):
    """A grant that overtook 2,300 waiting applications of one quantity-limited item: its referral
    version (about 1.06 MB, one version for the 2,300 red alerts) and the city table's copy of it
    (1.14 MB) are over the 1 MB that Kafka and aiokafka allow by default, which stopped the city
    stage on every restart before PERMITWATCH_MAX_RECORD_BYTES."""
    events = overtaken(2300)
    deployment.send(events)
    deployment.worker(moment(UNTIL).isoformat())
    deployment.wait_for(Expected.of(events))
    assert max(len(value) for value in deployment.values(deployment.topology.referrals)) > 1 << 20


def overtaken(waiting: int) -> list:
    """`waiting` applications for a quantity-limited item, and one accepted a day later and granted
    while they all wait: one city step judges them all."""
    start = moment("2026-03-02 09:00")
    events = []
    for n in range(waiting):
        case = CaseEvents(f"SZ-WAIT-{n}", item="ITEM-Q")
        submitted = start + timedelta(seconds=20 * n)
        events += [case.submitted(submitted.isoformat()), case.accepted((submitted + timedelta(hours=8)).isoformat())]
    jumper = CaseEvents("SZ-JUMP", item="ITEM-Q")
    day = start + timedelta(days=1)
    events += [jumper.submitted(day.isoformat()), jumper.accepted((day + timedelta(hours=1)).isoformat()),
               jumper.decided((day + timedelta(hours=2)).isoformat())]
    return sorted(events, key=lambda event: event.time)


def test_city_steps_larger_than_a_record_go_through_with_their_redo_in_parts(deployment, monkeypatch):
    """A worker whose records may take 1 MiB, the least it allows: the city step that judges a
    grant overtaking 500 applications writes about 1.5 MB, so its redo goes to the city changelog
    in parts before its marker; the alerts and referral versions are replay's."""
    if deployment.broker.name != "noida-db":
        pytest.skip("what is written is the workers' own, the same on every broker; one run is enough")
    events = overtaken(500)
    monkeypatch.setenv("PERMITWATCH_MAX_RECORD_BYTES", str(1 << 20))
    deployment.send(events)
    deployment.worker(moment(UNTIL).isoformat())
    deployment.wait_for(Expected.of(events))
    changelog = deployment.topology.city_changelog(f"{deployment.topology.prefix}-workers").name
    assert any(record.key.startswith(REDO_PART_PREFIX) for record in deployment.read(changelog))


def test_a_deadline_fires_while_no_event_arrives(deployment):
    """The worker's clock starts 20 s before the decision deadline of a case that then stays
    silent: the warning fires at once, the overdue alert when the deadline passes."""
    if deployment.broker.name != "noida-db":
        pytest.skip("the ticks are the workers' own, the same on every broker; one run is enough")
    case = CaseEvents("SZ-QUIET", item="ITEM-STD")
    events = [case.submitted("2026-03-02 09:00"), case.accepted("2026-03-02 10:00")]
    [overdue] = active(run(events, until="2026-12-31", catalog=ITEMS), "PW-001")
    deployment.send(events)
    # The 20 s are the time the worker has to judge the events and the test to see the warning
    # before the deadline: from its clock's start (after its imports) to the warning on the topic
    # took about 2 s (noida-db, 2 cores). They are waited out in full: 30 s before.
    deployment.worker((overdue.detected_at - timedelta(seconds=20)).isoformat())
    found = _wait_rule(deployment, "PW-002", 90)
    assert not [a for a in found if a["rule"] == "PW-001"], "PW-001 fired before its deadline"
    found = _wait_rule(deployment, "PW-001", 90)
    assert [a for a in found if a["rule"] == "PW-001"] == [orjson.loads(alert_value(overdue))]


def test_imported_history_then_live_events_give_the_alerts_of_replay(deployment, tmp_path):
    """`permitwatch import --kafka` before the workers start: last spring's cases are judged on
    their own clock (not today's), then the deployment carries on live, and the alerts and referral
    versions are those of replay of history and live events together. A second import, into a
    deployment a worker has run on, is refused, and so is one into a deployment with no catalog."""
    history = city(12, 40)
    open_case = CaseEvents("SZ-OPEN", item="ITEM-STD")  # open when the deployment goes live
    history += [open_case.submitted("2026-08-25 09:00"), open_case.accepted("2026-08-25 10:00")]
    live_case = CaseEvents("SZ-LIVE", item="ITEM-STD")
    go_live = moment("2026-09-01 12:00")
    live = [live_case.submitted((go_live + timedelta(seconds=20)).isoformat()),
            live_case.accepted((go_live + timedelta(seconds=40)).isoformat()),
            open_case.decided((go_live + timedelta(seconds=60)).isoformat())]
    history_file = tmp_path / "history.jsonl"
    history_file.write_bytes(b"".join(orjson.dumps(e.model_dump(mode="json")) + b"\n" for e in history))

    def import_history(prefix: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "permitwatch", "import", "--kafka", deployment.broker.bootstrap,
                               "--topic-prefix", prefix, "--partitions", str(PARTITIONS), "--format", "jsonl",
                               str(history_file), "--until", go_live.isoformat()],
                              env={**os.environ, **deployment.broker.worker_env}, capture_output=True, text=True,
                              timeout=300)

    imported = import_history(deployment.topology.prefix)
    assert imported.returncode == 0, imported.stderr
    assert f"accepted {len(history)}" in imported.stdout
    worker = deployment.worker(go_live.isoformat())
    _until(worker.partitions_loaded, "the worker judging")
    deployment.send(live)
    deployment.wait_for(Expected.of(history + live, until="2026-09-01 12:30"))
    again = import_history(deployment.topology.prefix)
    assert again.returncode == 2 and "already holds" in again.stderr and "new deployment" in again.stderr
    bare = import_history(f"t{uuid.uuid4().hex[:8]}")
    assert bare.returncode == 2 and "permitwatch reference --catalog" in bare.stderr


def test_topics_are_created_with_their_retention_and_an_old_alerts_topic_is_refused(broker, caplog):
    """Every topic gets the cleanup policy and retention of docs/kafka.md at creation; an alerts
    topic made before alerts were keyed by alert id (delete policy) stops the process rather than
    be compacted into one alert per case; a city changelog made before 2026-12-01 (Kafka's 1 MB)
    is named at start-up, not first met at the first crowded referral."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    topology = Topology(f"t{uuid.uuid4().hex[:8]}", PARTITIONS)
    old = Topology(f"t{uuid.uuid4().hex[:8]}", PARTITIONS)

    async def check() -> None:
        await ensure_topics(broker.bootstrap, topology)
        configs = await topic_configs(broker.bootstrap, [spec.name for spec in topology.specs()])
        for spec in topology.specs():
            assert {k: configs[spec.name].get(k) for k in spec.configs} == spec.configs, spec.name

        async def create(name: str, partitions: int, configs: dict[str, str]) -> None:
            admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
            await admin.start()
            try:
                await admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs)])
            finally:
                await admin.close()

        await create(old.alerts, PARTITIONS, {"cleanup.policy": "delete"})
        with pytest.raises(TopologyError, match=r"cleanup\.policy=delete, expected compact.*Upgrading the topics"):
            await ensure_topics(broker.bootstrap, old)

        group = f"{topology.prefix}-workers"
        changelog = topology.city_changelog(group).name
        with caplog.at_level(logging.WARNING, logger="permitwatch.kafka.topology"):
            await ensure_topics(broker.bootstrap, topology, group)  # no changelog yet: faust makes it
            assert not caplog.records, caplog.text
            await create(changelog, 1, {"cleanup.policy": "compact", "max.message.bytes": str(1 << 20)})
            await ensure_topics(broker.bootstrap, topology, group)
        assert f"{changelog} has max.message.bytes=1048576 where the settings say {8 << 20}" in caplog.text

    asyncio.run(check())


def test_a_read_model_rebuilt_after_retention_and_compaction_has_the_current_state_of_everything(
        deployment, tmp_path):
    """With the events' retention passed (seconds here) and the alerts and referrals compacted, an
    API started on an empty data directory still shows the last record of every alert and the
    latest version of every referral. noida-db applies retention and compaction; tansu 0.6.0
    (memory storage) does neither."""
    from fastapi.testclient import TestClient

    from permitwatch.api import compose
    from permitwatch.streams.settings import Settings

    if deployment.broker.name != "noida-db":
        pytest.skip("tansu 0.6.0 keeps every record: no retention, no compaction")
    events = city(13, 40)
    expected = Expected.of(events)
    deployment.send(events)
    deployment.worker(moment(UNTIL).isoformat())
    deployment.wait_for(expected)
    topology = deployment.topology
    produced = len(deployment.values(topology.alerts))
    short = {topology.events: {"retention.ms": "1000"}, topology.dead_letter: {"retention.ms": "1000"},
             topology.alerts: {"min.compaction.lag.ms": "0"}, topology.referrals: {"min.compaction.lag.ms": "0"}}
    # AlterConfigs replaces a topic's whole config: the configs it was created with go along.
    asyncio.run(alter_configs(deployment.broker, {spec.name: {**spec.configs, **short[spec.name], "segment.ms": "1000"}
                                                  for spec in topology.specs() if spec.name in short}))
    time.sleep(3)
    # A repeat of each partition's last record (what a restarted worker may write) rolls the segment
    # the rest sit in, so that compaction can reach them; readers drop it by its source header.
    last = {(record.topic, record.partition): record for topic in (topology.alerts, topology.referrals)
            for record in deployment.read(topic)}
    asyncio.run(produce_records(deployment.broker, list(last.values())))
    repeated = produced + sum(1 for topic, _ in last if topic == topology.alerts)
    _until(lambda: len(deployment.values(topology.alerts)) < repeated, "the alerts topic compacted", 60)
    _until(lambda: all(dict(r.headers).get(CONTROL_HEADER) for r in deployment.read(topology.events)),
           "the events' retention passed (the workers' latest ticks remain)", 60)
    settings = Settings(kafka=deployment.broker.bootstrap, topic_prefix=topology.prefix, partitions=PARTITIONS,
                              data_dir=tmp_path / "rebuilt", clock_start=moment(UNTIL),
                              **deployment.broker.settings_options)
    rebuilt = compose.kafka_api(settings)
    try:
        with TestClient(rebuilt.app) as client:
            _until(lambda: client.get("/readyz").json()["ready"], "the rebuilt read model caught up")
            rows = rebuilt.monitor.store.reader.execute("SELECT alert_id, record FROM alerts ORDER BY seq").fetchall()
            assert {alert_id: record for alert_id, record in rows} == expected.last_alert
            versions = rebuilt.monitor.store.reader.execute(
                "SELECT referral_id, version, record FROM referrals").fetchall()
            latest = {referral_id: record for referral_id, _, record in sorted(versions)}
            assert set(latest.values()) == expected.latest_referrals
    finally:
        rebuilt.close()


def test_the_documented_commands_run_a_deployment_on_one_host(broker, tmp_path):
    """docs/kafka.md's "Running it" block, run as written (only the broker's address and the ports
    replaced by free ones): reference data, history imported, two workers with their own metrics
    ports and state directories, the API. The workers judge the history as replay does (at today's
    clock: they run on the real time), both serve metrics, and the API becomes ready."""
    import urllib.request

    if broker.name != "noida-db":
        pytest.skip("the commands are the same on every broker; one run is enough")
    block = DOCS_KAFKA.read_text().split("<!-- running-it:", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    ports = {"9464": free_port(), "9465": free_port(), "8080": free_port()}
    block = block.replace("localhost:9092", broker.bootstrap)
    for documented, port in ports.items():
        block = block.replace(f"port {documented}", f"port {port}")
    (tmp_path / "deploy").symlink_to(REPO / "deploy")
    log = tmp_path / "running-it.log"
    env = {**os.environ, **broker.worker_env, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    with log.open("wb") as out:
        shell = subprocess.Popen(["bash", "-e", "-c", block], cwd=tmp_path, env=env, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def get(port: int, path: str) -> bytes:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
                return answer.read()

        def ready() -> bool:
            if shell.poll() is not None:
                raise AssertionError(f"the block exited {shell.returncode}: {log.read_text(errors='replace')[-3000:]}")
            try:
                return orjson.loads(get(ports["8080"], "/readyz"))["ready"]
            except OSError:
                return False

        def metrics(port: int) -> bool:
            try:
                return b"permitwatch_events_total" in get(port, "/metrics")
            except OSError:
                return False

        _until(ready, "the API ready", 180)
        for worker_port in (ports["9464"], ports["9465"]):
            _until(lambda port=worker_port: metrics(port), f"a worker's metrics on port {worker_port}", 120)

        def judged_as_replay() -> bool:
            replayed = subprocess.run(
                [sys.executable, "-m", "permitwatch", "replay", "history.jsonl", "--catalog", "deploy/reference/catalog.json",
                 "--until", datetime.now(UTC).isoformat(), "--alerts-out", "replayed.jsonl"],
                cwd=tmp_path, capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)})
            assert replayed.returncode == 0, replayed.stderr
            expected = {orjson.loads(line)["alert_id"]: line
                        for line in (tmp_path / "replayed.jsonl").read_bytes().splitlines()}
            got = {orjson.loads(record.value)["alert_id"]: record.value
                   for record in asyncio.run(read_topic(broker, "permitwatch.alerts"))}
            differences[:] = [f"{len(expected)} alerts in replay, {len(got)} on the topic; differ: "
                              f"{sorted(k for k in expected.keys() | got.keys() if expected.get(k) != got.get(k))[:5]}"]
            return bool(expected) and got == expected

        differences: list[str] = []
        try:
            _until(judged_as_replay, "the history judged as replay judges it", 180)
        except AssertionError as failed:
            raise AssertionError(f"{failed}: {differences}; logs in {tmp_path}") from None
        assert "accepted" in log.read_text(errors="replace")

        def backlog() -> dict[str, float]:
            """Each stage's backlog over both workers (each reports the partitions it judges)."""
            total: dict[str, float] = {}
            for port in (ports["9464"], ports["9465"]):
                for line in get(port, "/metrics").decode().splitlines():
                    if line.startswith("permitwatch_backlog_records{"):
                        stage = line.split('stage="', 1)[1].split('"', 1)[0]
                        total[stage] = total.get(stage, 0.0) + float(line.split()[-1])
            return total

        # Caught up: at most the ticks and clocks written since the last batch (one a second a partition).
        _until(lambda: (seen := backlog()).keys() == {"cases", "city"} and all(v <= 50 for v in seen.values()),
               "the workers' backlog back to a few ticks", 60)
    finally:
        stop_process(shell, timeout=10, group=True)


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
    from permitwatch.streams.kafka.gaps import GapGuard

    topic = f"gaps-{uuid.uuid4().hex[:8]}"
    asyncio.run(produce(broker, topic, [(b"k", b"%d" % i) for i in range(10)]))

    async def scenario():
        # A real gap is known after `patience` empty one-second fetches (10 in the workers; 3
        # here, where the log is local and a fetch of records that exist returns at once).
        guard = GapGuard(broker.bootstrap, Metrics("kafka").gap_refills, patience=3)

        async def missing(offset, needed):
            return [(r.offset, r.value) async for r in guard.missing(topic, 0, offset, needed)]

        assert await missing(7, needed=3) == [(3, b"3"), (4, b"4"), (5, b"5"), (6, b"6")]
        assert await missing(3, needed=3) == []
        assert await missing(2, needed=3) == [], "a redelivery, not a gap"
        assert await missing(12, needed=10) == [], "nothing between: a real gap"
        both = await asyncio.gather(missing(2, needed=0), missing(9, needed=8))
        assert both == [[(0, b"0"), (1, b"1")], [(8, b"8")]], "both stages meeting gaps at once"
        assert guard.refills._value.get() == 3

    asyncio.run(scenario())


def test_the_api_over_kafka_ingests_follows_the_topics_and_records_exemptions(deployment, tmp_path):
    """`permitwatch api --kafka`: events posted to the API reach the workers through the events
    topic, their alerts and dead letters come back into the API's read model, an operator's
    exemption makes the worker publish a new referral version, and a restarted API resumes from
    its stored positions without repeating a record."""
    from fastapi.testclient import TestClient

    from permitwatch.api import compose
    from permitwatch.streams.settings import Settings

    events = [e for e in city(10, 20) if e.subject not in ("SZ-LATE", "SZ-NONE")]
    late = CaseEvents("SZ-LATE", item="ITEM-STD")
    events = sorted([*events, late.submitted("2026-03-02 09:00"), late.accepted("2026-03-02 10:00"),
                     late.decided("2026-05-20")], key=lambda e: e.time)
    expected = Expected.of(events)
    deployment.worker(moment(UNTIL).isoformat())
    settings = Settings(kafka=deployment.broker.bootstrap, topic_prefix=deployment.topology.prefix,
                              partitions=PARTITIONS, data_dir=tmp_path / "api", clock_start=moment(UNTIL),
                              **deployment.broker.settings_options)

    def stored(api, table: str) -> list[bytes]:
        return [row[0] for row in api.monitor.store.reader.execute(f"SELECT record FROM {table} ORDER BY seq")]

    def stored_alerts(api) -> list[bytes]:
        return stored(api, "alerts")

    api = compose.kafka_api(settings)
    try:
        with TestClient(api.app) as client:
            ingest = {"Authorization": f"Bearer {api.new_tokens['ingest']}"}
            operator = {"Authorization": f"Bearer {api.new_tokens['operator']}"}
            _until(lambda: client.get("/readyz").json()["ready"], "the API connected and caught up")
            # NaN: taken by the event parser in an attribute it ignores, not JSON; refused here, not by the workers
            spoilt = orjson.dumps(CaseEvents("SZ-NAN").submitted("2026-03-02 09:00").model_dump(mode="json"))
            body = (b"\n".join(orjson.dumps(e.model_dump(mode="json")) for e in events) + b"\n{not json\n"
                    + spoilt[:-1] + b', "zzext": NaN}\n')
            posted = client.post("/events", content=body, headers={**ingest, "Content-Type": "application/x-ndjson"})
            assert posted.status_code == 202, posted.text
            assert posted.json()["accepted"] == len(events)
            assert [r["category"] for r in posted.json()["rejected"]] == ["invalid_json", "invalid_json"]
            # Counted as sent here; the workers count them accepted as they judge them.
            metrics = client.get("/metrics").text
            sent = sum(float(line.split()[-1]) for line in metrics.splitlines()
                       if line.startswith("permitwatch_events_sent_total{"))
            accepted = [line for line in metrics.splitlines() if line.startswith("permitwatch_events_total{")]
            assert sent == len(events) and accepted and all(line.endswith(" 0.0") for line in accepted)
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
    again = compose.kafka_api(settings)
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

    from permitwatch.api import compose
    from permitwatch.streams.settings import Settings

    events = city(11, 10)
    deployment.send(events)
    deployment.worker(moment(UNTIL).isoformat())

    def settings(name: str) -> Settings:
        return Settings(kafka=deployment.broker.bootstrap, topic_prefix=deployment.topology.prefix,
                        partitions=PARTITIONS, data_dir=tmp_path / name, clock_start=moment(UNTIL),
                        **deployment.broker.settings_options)

    older = Store(settings("api-1").data.database)  # a read model from before actions had a topic
    older.action(ActionRecord(seq=0, target_kind="alert", target_id="PW-OLD-1", action="acknowledge",
                              actor="old.operator", at=moment("2026-03-01 09:00")))
    older.close()
    apis = [compose.kafka_api(settings(name)) for name in ("api-1", "api-2")]
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
    rebuilt = compose.kafka_api(settings("api-3"))
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
