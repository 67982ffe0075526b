"""The Kafka runtime's stages, without a broker: partitions consumed in random orders and workers
killed at random points give the alerts of `permitwatch replay` (duplicates only as identical
records), referrals that converge to replay's, and dead letters with their source."""

from __future__ import annotations

from datetime import timedelta

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.referrals import Referral
from streams.kafka.stages import alert_value
from streams.kafka.topology import Topology
from tests.factory import CaseEvents, moment
from tests.harness import run_all
from tests.memory_kafka import Crashes, MemoryCluster
from tests.test_engine import ITEMS, UNTIL, scenario

TOPOLOGY = Topology("t", partitions=4)


def with_exemption(events: list) -> list:
    """A red card and, later, an exemption for it (the referral stage), plus one for a case
    that has no referral (a dead letter)."""
    late = CaseEvents("SZ-LATE", item="ITEM-STD")
    nobody = CaseEvents("SZ-NONE", item="ITEM-STD")
    return sorted([*events, late.submitted("2026-03-02 09:00"), late.accepted("2026-03-02 10:00"),
                   late.decided("2026-05-20"), late.exemption("2026-06-01"), nobody.exemption("2026-06-02")],
                  key=lambda e: e.time)


def through_kafka(events: list, seed: int, crash_rate: float = 0.0) -> MemoryCluster:
    cluster = MemoryCluster(TOPOLOGY, ITEMS, now=moment(UNTIL), seed=seed, crashes=Crashes(rate=crash_rate))
    cluster.send_events(events)
    cluster.run()
    cluster.tick(moment(UNTIL))
    cluster.run()
    return cluster


def essence(referral: Referral) -> dict:
    """What a referral says, without where in its history it stands."""
    return referral.model_dump(mode="json", exclude={"version", "as_of", "change"})


def assert_same_as_replay(events: list, cluster: MemoryCluster) -> None:
    replayed = run_all(events, until=UNTIL, catalog=ITEMS)
    want = [alert_value(a) for a in replayed.alerts]
    got = [r.value for r in cluster.records(TOPOLOGY.alerts)]
    assert set(got) == set(want), "alert records differ from replay's"
    last_wanted = {a.alert_id: alert_value(a) for a in replayed.alerts}
    last_got = {orjson.loads(v)["alert_id"]: v for v in got}
    assert last_got == last_wanted, "the last record of some alert differs"
    final = {r.referral_id: essence(r) for r in replayed.referrals}
    published = {}
    for record in cluster.records(TOPOLOGY.referrals):
        referral = Referral.model_validate_json(record.value)
        if referral.version >= published.get(referral.referral_id, (0, None))[0]:
            published[referral.referral_id] = (referral.version, essence(referral))
    assert {rid: e for rid, (_, e) in published.items()} == final


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), order=st.integers(0, 10_000))
def test_any_order_of_partitions_gives_the_replays_alerts(seed, order):
    events = with_exemption(scenario(seed, cases=10))
    assert_same_as_replay(events, through_kafka(events, order))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), order=st.integers(0, 10_000))
def test_workers_killed_anywhere_lose_nothing_and_repeat_only_identical_records(seed, order):
    events = with_exemption(scenario(seed, cases=10))
    cluster = through_kafka(events, order, crash_rate=0.05)
    assert cluster.crashes.crashes > 0
    assert_same_as_replay(events, cluster)


def test_pw013_waits_for_the_overtaken_case_to_be_read_up_to_the_grant():
    """An earlier applicant decided before the later one's grant: replay raises nothing. On Kafka
    the later case's partition may be read first; the item must not raise a red card that the
    earlier case's own decision, not yet read, disproves."""
    a, b = CaseEvents("SZ-A", item="ITEM-Q"), CaseEvents("SZ-B", item="ITEM-Q")
    events = [a.submitted("2026-03-02 09:00"), a.accepted("2026-03-02 10:00"),
              b.submitted("2026-03-02 11:00"), b.accepted("2026-03-03 10:00"),
              a.decided("2026-03-04"), b.decided("2026-03-05")]
    for order in range(40):
        cluster = through_kafka(events, order)
        assert [r for r in cluster.records(TOPOLOGY.alerts) if b'"PW-013"' in r.value] == []
    assert_same_as_replay(events, cluster)


def test_invalid_records_become_dead_letters_with_their_source():
    cluster = MemoryCluster(TOPOLOGY, ITEMS, now=moment(UNTIL))
    future = CaseEvents("SZ-F").submitted((moment(UNTIL) + timedelta(days=2)).isoformat())
    cluster.send_raw(b"k", b"{not json")
    cluster.send_raw(b"k", b"\xff\xfe")
    cluster.send_events([future])
    cluster.run()
    letters = [orjson.loads(r.value) for r in cluster.records(TOPOLOGY.dead_letter)]
    assert sorted(d["category"] for d in letters) == ["future_time", "invalid_json", "invalid_utf8"]
    bad = next(d for d in letters if d["category"] == "invalid_json")
    assert bad["raw"] == "{not json" and bad["source"]["topic"] == "t.events"
    assert bad["origin"] == f"t.events/{bad['source']['partition']}/{bad['source']['offset']}"
    assert "ahead of the worker's clock" in next(d for d in letters if d["category"] == "future_time")["reason"]
