"""The Kafka runtime's stages, without a broker: partitions consumed in random orders and workers
killed at random points give the alerts of `permitwatch replay` (duplicates only as identical
records), referrals that converge to replay's, and dead letters with their source."""

from __future__ import annotations

import io
import math
import zlib
from datetime import timedelta

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from permitwatch.alerts.case import CaseState
from permitwatch.alerts.clock import JUST_AFTER
from permitwatch.alerts.referrals import _Working
from permitwatch.models.alerts import Alert
from permitwatch.models.errors import CorruptState
from permitwatch.models.events import ExemptionRecorded
from permitwatch.streams import state_codec
from permitwatch.streams.inputs.readers import Record
from permitwatch.streams.kafka.stages import StoredCase, StoredItem, TableRetired
from permitwatch.streams.kafka.topology import Topology
from permitwatch.streams.kafka.wire import (
    MARKER_PREFIX,
    REDO_PART_PREFIX,
    RETIRED_PREFIX,
    decode_marker,
    encode_retired,
    is_redo_part,
)
from permitwatch.streams.replay import replay
from tests import legacy_state
from tests.factory import CaseEvents, moment
from tests.harness import engine_for
from tests.kafka_expect import Expected, with_exemption
from tests.memory_kafka import Crashes, MemoryCluster
from tests.scenarios import ITEMS, UNTIL, crowded_item, scenario

TOPOLOGY = Topology("t", partitions=4)


def through_kafka(events: list, seed: int, crash_rate: float = 0.0) -> MemoryCluster:
    cluster = MemoryCluster(TOPOLOGY, ITEMS, now=moment(UNTIL), seed=seed, crashes=Crashes(rate=crash_rate))
    cluster.send_events(events)
    cluster.run()
    return to_the_end(cluster)


def to_the_end(cluster: MemoryCluster) -> MemoryCluster:
    """The workers' clocks to the log's end and just past it, each move run through."""
    cluster.tick(moment(UNTIL))
    cluster.run()
    # Replay knows its file is complete; the city stage lets an instant through only once every
    # partition's clock has passed it.
    cluster.tick(moment(UNTIL) + JUST_AFTER)
    cluster.run()
    return cluster


ENTRY_KINDS = {b"r": ("referral", _Working), b"h": ("item", StoredItem), b"c": ("item_case", StoredCase),
               b"a": ("alert", Alert)}
"""The city table's entries by the first letter of their keys: their kind, and what a release
before table format 5 pickled."""


def pickled_before(value: object, table_format: int = 4) -> bytes:
    """A table value as a release before table format 5 wrote it."""
    return bytes([table_format]) + legacy_state.dumps(value)


def assert_same_as_replay(events: list, cluster: MemoryCluster) -> None:
    expected = Expected.of(events)
    expected.assert_met([r.value for r in cluster.records(TOPOLOGY.alerts)],
                        [r.value for r in cluster.records(TOPOLOGY.referrals)])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), order=st.integers(0, 10_000))
def test_any_order_of_partitions_gives_the_replays_alerts(seed, order):
    events = with_exemption(scenario(seed, cases=10))
    assert_same_as_replay(events, through_kafka(events, order))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), order=st.integers(0, 10_000))
@example(seed=483, order=483)  # a kill cut an item's step between a case entry and its header
def test_workers_killed_anywhere_lose_nothing_and_repeat_only_identical_records(seed, order):
    events = with_exemption(scenario(seed, cases=10))
    cluster = through_kafka(events, order, crash_rate=0.15)  # per batch
    assert cluster.crashes.crashes > 0
    assert_same_as_replay(events, cluster)


def test_a_crowded_items_one_version_per_grant_survives_killed_workers():
    """A city step of this item writes more than the case stage's redo limit (256 KiB): until
    2026-12-01 the city stage wrote such a step without redo, and a kill between its writes left
    the item torn (a red alert against an application already denied)."""
    events = crowded_item(50)
    cluster = through_kafka(events, 1, crash_rate=0.15)
    assert cluster.crashes.crashes > 0
    assert_same_as_replay(events, cluster)


def test_steps_larger_than_a_record_survive_killed_workers_by_their_redo_in_parts():
    """Records of 3,000 bytes: most city steps of a crowded item, and the case stage's ticks, are
    each larger than a marker with their redo can be, so their redo goes first, in parts. Until
    2026-12-02 such a step wrote its marker last and no redo, and a kill between its writes left
    the item torn (with the city stage's limit alone lowered so, 8 seeds in 10 failed). Parts no
    marker needs any more are deleted, strays of a step cut short included."""
    events = crowded_item(30)
    for seed in range(10):
        cluster = MemoryCluster(TOPOLOGY, ITEMS, now=moment(UNTIL), seed=seed, crashes=Crashes(rate=0.3),
                                redo_limit=3_000)
        cluster.send_events(events)
        cluster.run()
        to_the_end(cluster)
        assert cluster.crashes.crashes > 0
        assert_same_as_replay(events, cluster)
        cluster._flush()  # the changelogs as a stop would leave them
        for table in cluster.durable.values():
            named = {key for marker, raw in table.items() if marker.startswith(MARKER_PREFIX + b"applied/")
                     for key, value in decode_marker(raw).redo if is_redo_part(key, value)}
            assert {key for key in table if key.startswith(REDO_PART_PREFIX)} == named, \
                "the parts kept are those of the partitions' last markers"


def test_a_retired_case_comes_back_from_the_table_for_a_late_event_as_in_replay():
    """EVENTS.md, old cases, on Kafka: the case leaves the partition's working set for its retired
    entry, and a late licence months later is its grant's licence, a re-sent submission a duplicate."""
    c = CaseEvents("SZ-OLD", item="ITEM-STD")
    submitted = c.submitted("2026-03-02")
    early = [submitted, c.accepted("2026-03-03"), c.decided("2026-03-10"), c.published("2026-03-12")]
    late = [c.licence("2026-07-15"), submitted]
    for seed in range(5):
        cluster = MemoryCluster(TOPOLOGY, ITEMS, now=moment(UNTIL), seed=seed)
        cluster.send_events(early)
        cluster.run()
        cluster.tick(moment("2026-07-01"))
        cluster.run()
        assert RETIRED_PREFIX + b"SZ-OLD" in cluster.tables["cases"]
        cluster.send_events(late)
        cluster.run()
        stats = [book.book.stats for book in cluster.stages[TOPOLOGY.events].books.values()]
        assert (sum(s.cases_restored for s in stats), sum(s.duplicates for s in stats)) == (1, 1)
        assert_same_as_replay([*early, *late], to_the_end(cluster))


def test_the_retired_cases_pop_as_a_mapping_does():
    table = {}
    retired = TableRetired(table, 0)
    with pytest.raises(KeyError):
        retired.pop("SZ-NONE")
    assert retired.pop("SZ-NONE", None) is None and retired.touched == {}
    case = CaseState("SZ-OLD")
    table[RETIRED_PREFIX + b"SZ-OLD"] = encode_retired(0, case)
    assert retired.pop("SZ-OLD").case_id == "SZ-OLD" and retired.touched == {"SZ-OLD": None}
    assert retired.pop("SZ-OLD", "gone") == "gone"  # popped in this step, though still in the table
    table[RETIRED_PREFIX + b"SZ-BAD"] = b"\x00garbage"
    with pytest.raises(CorruptState, match="SZ-BAD"):
        retired.pop("SZ-BAD", None)


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


def test_a_batch_parsed_before_its_steps_gives_the_same_records_as_each_record_parsed_in_its_step():
    """`prepare` is optional (the worker's records refilled across a gap are not prepared): with
    or without it, the same records out, byte for byte."""
    events = scenario(7, cases=8)
    outputs = []
    for prepared in (True, False):
        cluster = MemoryCluster(TOPOLOGY, ITEMS, now=moment(UNTIL), seed=3)
        if not prepared:
            cluster.stages[TOPOLOGY.events].prepare = lambda records: None
        cluster.send_events(events + events[:2])
        cluster.send_raw(b"k", b"{not json")
        cluster.send_raw(b"k", b"\xff\xfe")
        cluster.send_raw(b"k", orjson.dumps({**orjson.loads(events[0].model_dump_json()), "data": {}}))
        cluster.run()
        to_the_end(cluster)
        outputs.append({topic: [(r.key, r.value, r.headers) for r in cluster.records(topic)]
                        for topic in (TOPOLOGY.alerts, TOPOLOGY.referrals, TOPOLOGY.dead_letter, TOPOLOGY.city)})
    assert outputs[0] == outputs[1]
    assert len(outputs[0][TOPOLOGY.dead_letter]) == 3 and outputs[0][TOPOLOGY.alerts]


def test_events_with_nan_are_refused_as_invalid_json_here_and_in_replay_alike():
    """The event parser takes NaN and Infinity in an attribute it ignores; JSON (RFC 8259) and the
    content digest's reader do not. Such an event is refused on arrival whatever its type, as
    replay refuses it: until 2026-12-02 replay stopped on a case event with a traceback, and an
    exemption was taken by replay and, once a batch's digests were made together, refused by the
    Kafka stage as an engine error."""
    events = with_exemption(scenario(4, cases=6))
    spoilt = {next(i for i, e in enumerate(events) if e.kind == "application.accepted")}
    spoilt |= {i for i, e in enumerate(events) if isinstance(e, ExemptionRecorded)}
    lines = []
    for index, event in enumerate(events):
        raw = orjson.dumps(event.model_dump(mode="json"))
        lines.append(raw[:-1] + (b', "zzext": NaN}' if index % 2 else b', "zzext": -Infinity}') if index in spoilt
                     else raw)
    alerts, referrals, letters = io.BytesIO(), io.BytesIO(), io.BytesIO()
    replay((Record(f"line:{n}", line) for n, line in enumerate(lines)), engine_for(catalog=ITEMS), alerts, letters,
           until=moment(UNTIL), referrals_out=referrals)
    cluster = MemoryCluster(TOPOLOGY, ITEMS, now=moment(UNTIL))
    for event, line in zip(events, lines, strict=True):
        cluster.send_raw(event.subject.encode(), line)
    cluster.run()
    to_the_end(cluster)
    assert {r.value for r in cluster.records(TOPOLOGY.alerts)} == set(alerts.getvalue().splitlines())
    assert {r.value for r in cluster.records(TOPOLOGY.referrals)} == set(referrals.getvalue().splitlines())
    refused = sorted(orjson.loads(r.value)["category"] for r in cluster.records(TOPOLOGY.dead_letter))
    assert refused == sorted(orjson.loads(line)["category"] for line in letters.getvalue().splitlines())
    assert refused == ["invalid_json"] * len(spoilt)
    assert "NaN, Infinity and numbers beyond a double's range are refused" in \
        orjson.loads(cluster.records(TOPOLOGY.dead_letter)[0].value)["reason"]


def test_accepted_events_are_counted_once_each_by_kind_and_department_when_their_batch_commits():
    events = scenario(5, cases=6)
    cluster = MemoryCluster(TOPOLOGY, ITEMS, now=moment(UNTIL))
    cluster.send_events(events + events[:3])  # the repeats are duplicates, not counted as accepted
    cluster.run()
    registry = cluster.metrics.registry
    kinds: dict[str, int] = {}
    for event in events:
        kinds[event.kind] = kinds.get(event.kind, 0) + 1
    for kind, count in kinds.items():
        assert registry.get_sample_value("permitwatch_events_total", {"type": kind}) == count
    departments = {item.department for item in ITEMS.items}
    assert sum(registry.get_sample_value("permitwatch_department_events_total", {"department": department}) or 0
               for department in departments) == len(events)
    assert registry.get_sample_value("permitwatch_duplicate_events_total") == 3
    assert not cluster.stages[TOPOLOGY.events].accepted  # nothing left for a batch not yet committed


def test_a_case_whose_stored_state_cannot_be_read_is_passed_by_and_the_others_deadlines_fire():
    """A forged or corrupt table value stopped every tick of its partition before (each tick was
    dead-lettered), so no deadline there fired. Now the tick passes that case by, once, loudly;
    an event for it is still refused, and its bytes are kept for repair."""
    first = "SZ-UNREADABLE"
    partition = zlib.crc32(first.encode()) % TOPOLOGY.partitions
    other = next(f"SZ-OTHER-{n}" for n in range(100) if zlib.crc32(f"SZ-OTHER-{n}".encode()) % TOPOLOGY.partitions
                 == partition)
    bad, good = CaseEvents(first), CaseEvents(other)
    cluster = MemoryCluster(TOPOLOGY, ITEMS, now=moment("2026-03-02 12:00"))
    cluster.send_events([bad.submitted("2026-03-02 09:00"), bad.accepted("2026-03-02 10:00"),
                         good.submitted("2026-03-02 09:00"), good.accepted("2026-03-02 10:00")])
    cluster.run()
    # The last batch's marker redoes its writes on every start: the damage is to a case it did not write.
    cluster.send_events([good.step("2026-03-02 11:00", "review", "o-reviewer")])
    cluster.run()
    table = cluster.tables["cases"]
    table[first.encode()] = damaged = table[first.encode()][:-20]
    cluster._start_worker()  # a restart: nothing of the case in memory, its timer from the table
    for day in ("2026-04-15", "2026-04-16"):
        cluster.tick(moment(day))
        cluster.run()

    alerts = [orjson.loads(r.value) for r in cluster.records(TOPOLOGY.alerts)]
    assert "PW-001" in {a["rule"] for a in alerts if a["case_id"] == other}
    assert [a for a in alerts if a["case_id"] == first] == []
    letters = [orjson.loads(r.value) for r in cluster.records(TOPOLOGY.dead_letter)]
    assert [(d["category"], first in d["reason"]) for d in letters] == [("engine_error", True)]
    assert "cannot be read" in letters[0]["reason"]

    cluster.send_events([bad.decided("2026-04-15 10:00")])
    cluster.run()
    letters = [orjson.loads(r.value) for r in cluster.records(TOPOLOGY.dead_letter)]
    assert len(letters) == 2 and letters[1]["category"] == "engine_error" and "cannot be read" in letters[1]["reason"]
    assert table[first.encode()] == damaged


def test_a_batch_too_large_for_one_marker_is_written_in_runs_each_whole_after_its_marker():
    from permitwatch.streams.kafka.stages import REDO_LIMIT, Step, Write, durable_writes
    from permitwatch.streams.kafka.wire import Marker, decode_marker, marker_key

    state = b"s" * 40_000
    steps = [Step(writes=[Write(None, f"case-{n % 9}".encode(), state + bytes([n]))], partition=2, marker=Marker(n))
             for n in range(20)]
    written = list(durable_writes(steps))
    markers = [n for n, (_, key, _) in enumerate(written) if key == marker_key(2)]
    assert len(markers) > 1, "20 steps of 40 kB do not fit one marker"
    applied: dict[bytes, bytes] = {}
    for first, end in zip(markers, [*markers[1:], len(written)], strict=True):
        raw = written[first][2]
        assert len(raw) <= REDO_LIMIT
        marker = decode_marker(raw)
        run = {key: value for _, key, value in written[first + 1:end]}
        assert dict(marker.redo) == run, "a run's writes are its marker's redo, each key once"
        applied.update(run)
        # What the steps up to the run's last one wrote: a prefix cut after the marker is completed
        # from the redo to exactly that.
        expected = {}
        for step in steps[:marker.offset + 1]:
            expected.update((write.key, write.value) for write in step.writes)
        assert applied == expected
    assert decode_marker(written[markers[-1]][2]).offset == 19


def test_an_item_stored_with_its_alerts_in_one_value_is_read_and_its_alerts_become_entries():
    """Before, an item's PW-013 records were all in the item's one value, rewritten on every
    change (a busy item's value passed Kafka's 1 MB record limit and stopped the worker). A table
    written so is read, and at the item's next change its records move to entries of their own."""
    from permitwatch.streams.kafka.wire import decode_entry

    a, b, c = (CaseEvents(f"SZ-{name}", item="ITEM-Q") for name in "ABC")
    first = [a.submitted("2026-03-02 09:00"), a.accepted("2026-03-02 10:00"),
             b.submitted("2026-03-02 11:00"), b.accepted("2026-03-03 10:00"), b.decided("2026-03-04 10:00")]
    then = [c.submitted("2026-03-05 09:00"), c.accepted("2026-03-05 10:00"), c.decided("2026-03-06 10:00"),
            a.decided("2026-03-09 10:00", outcome="deny")]
    cluster = MemoryCluster(TOPOLOGY, ITEMS, now=moment(UNTIL))
    cluster.send_events(first)
    cluster.run()
    cluster.tick(moment("2026-03-05 08:00"))
    cluster.run()
    table = cluster.tables["city"]
    entries = {key: decode_entry(raw, "alert", Alert) for key, raw in table.items() if key.startswith(b"a\x1fITEM-Q")}
    assert len(entries) == 1  # (B, A): B granted while A waited
    item_key = b"h\x1fITEM-Q"
    pending, left = decode_entry(table[item_key], "item", StoredItem)
    table[item_key] = pickled_before(StoredItem({tuple(k.decode().split("\x1f")[2:]): v for k, v in entries.items()},
                                                pending, left))
    for key in entries:
        del table[key]
    cluster.durable["city"] = dict(table)
    cluster._start_worker()

    cluster.send_events(then)
    cluster.run()
    stored = {tuple(key.decode().split("\x1f")[2:]) for key in table if key.startswith(b"a\x1fITEM-Q")}
    assert ("SZ-B", "SZ-A") in stored
    assert len(decode_entry(table[item_key], "item", StoredItem)) == 2  # (pending, left): no alerts in it
    assert_same_as_replay(first + then, to_the_end(cluster))


def test_the_city_header_is_json_and_one_pickled_by_the_release_before_still_reads():
    """The city stage writes its header at every step: as JSON since 2026-12-01 (a pickle cost the
    stage a tenth of its time). A table whose header was pickled carries on as replay does."""
    from datetime import UTC, datetime

    from permitwatch.models.common import LEGAL_TZ
    from permitwatch.models.errors import CorruptState
    from permitwatch.streams.kafka.stages import CityHeader, decode_city_header, encode_city_header

    repeated = datetime(1990, 9, 15, 17, 30, tzinfo=UTC).astimezone(LEGAL_TZ)
    header = CityHeader({0: repeated, 3: moment("2026-03-02 09:00")}, {("x.events", 3): (41, 2)}, repeated, 7)
    back = decode_city_header(encode_city_header(header))
    assert back == header and back.clock.fold == 1 and back.heard[0].tzinfo is LEGAL_TZ
    assert decode_city_header(encode_city_header(CityHeader({}, {}, None, 0))) == CityHeader({}, {}, None, 0)
    with pytest.raises(CorruptState, match="header"):
        decode_city_header(encode_city_header(header).replace(b"41", b'"41"'))

    a, b = (CaseEvents(f"SZ-H{name}", item="ITEM-Q") for name in "AB")
    first = [a.submitted("2026-03-02 09:00"), a.accepted("2026-03-02 10:00"), b.submitted("2026-03-02 11:00")]
    then = [b.accepted("2026-03-03 10:00"), b.decided("2026-03-04 10:00"), a.decided("2026-03-09 10:00")]
    cluster = MemoryCluster(TOPOLOGY, ITEMS, now=moment(UNTIL))
    cluster.send_events(first)
    cluster.run()
    table = cluster.tables["city"]
    assert table[b"s"].startswith(b"PWH\x01")
    table[b"s"] = pickled_before(decode_city_header(table[b"s"]), table_format=3)
    cluster.durable["city"] = dict(table)
    cluster._start_worker()
    cluster.send_events(then)
    cluster.run()
    assert_same_as_replay(first + then, to_the_end(cluster))


def test_the_citys_entries_are_json_and_entries_pickled_by_the_release_before_still_read():
    """Since table format 5 a referral's working copy, a PW-013 item, an item's case and a PW-013
    record are JSON (nothing written to the tables is a pickle). A table whose entries were all
    pickled carries on as replay does."""
    from permitwatch.streams.kafka.wire import decode_entry

    events = with_exemption(crowded_item(12))
    cluster = MemoryCluster(TOPOLOGY, ITEMS, now=moment(UNTIL))
    converted = set()
    # Cut after the grant and the first denials (PW-013 records retracted), then after the
    # exemption (a referral's working copy holds one).
    for start, end in ((0, 32), (32, len(events) - 1), (len(events) - 1, len(events))):
        cluster.send_events(events[start:end])
        cluster.run()
        cluster.tick(events[end - 1].time + timedelta(hours=1))
        cluster.run()
        table = cluster.tables["city"]
        for key, raw in table.items():
            if key[:1] in b"rhca" and raw[0] == 5:  # written since the last cut
                assert raw[1:5] == state_codec.ENTRY_MAGIC
                kind, before = ENTRY_KINDS[key[:1]]
                value = decode_entry(raw, kind, before)
                converted.add("exemption" if key[:1] == b"r" and value.exemption else key[:1].decode())
                table[key] = pickled_before(StoredItem({}, *value) if key[:1] == b"h" else
                                            StoredCase(*value) if key[:1] == b"c" else value)
        cluster.durable["city"] = dict(table)
        cluster._start_worker()
    assert converted == {"r", "h", "c", "a", "exemption"}
    assert_same_as_replay(events, to_the_end(cluster))


def test_tables_of_the_release_before_still_read_and_a_release_before_refuses_this_ones():
    """Table format 5 (2026-12-01: JSON case entries, city header and city entries) reads formats 3
    and 4's values; a worker reading only those stops at the first marker (`StateFormatError`)
    instead of dead-lettering the JSON it cannot read, and so at a marker of format 6 (2026-12-02:
    its redo continues in parts)."""
    from permitwatch.alerts.case import CaseState
    from permitwatch.streams.kafka import wire

    marker = wire.Marker(41, moment("2026-03-02 09:00"), ((b"k", b"v"),))
    case = CaseState("SZ-F-1", last_time=moment("2026-03-02 09:00"))
    item = ({("SZ-F-2", "SZ-F-1")}, {"SZ-F-3": moment("2026-03-02 09:00")})
    for raw, decode, value in ((wire.encode_marker(marker), wire.decode_marker, marker),
                               (wire.encode_case(2, None, case), wire.decode_case, case)):
        assert raw[0] == wire.STATE_FORMAT == 5
        assert decode(bytes([3]) + raw[1:]) == decode(bytes([4]) + raw[1:]) == value
        for later in (6, 7) if decode is wire.decode_case else (7,):  # a marker of 6 has parts
            with pytest.raises(wire.StateFormatError):
                decode(bytes([later]) + raw[1:])
    # A marker whose redo continues in parts (2026-12-02) is one a release before refuses.
    with_parts = marker._replace(redo=((wire.redo_part_key(0, 41, 0), b""),))
    raw = wire.encode_marker(with_parts)
    assert raw[0] == wire.MARKER_WITH_PARTS not in {3, 4, 5} and wire.decode_marker(raw) == with_parts
    raw = wire.encode_entry(state_codec.dumps_item(*item))
    assert raw[0] == 5 and wire.decode_entry(raw, "item", StoredItem) == item
    for table_format in (3, 4):
        assert wire.decode_entry(pickled_before(StoredItem({}, *item), table_format), "item", StoredItem)[1:] == item
    for wrong in (bytes([6]) + raw[1:], pickled_before(StoredItem({}, *item), 6)):
        with pytest.raises(wire.StateFormatError):
            wire.decode_entry(wrong, "item", StoredItem)
    for wrong_kind, before in (("referral", _Working), ("item_case", StoredCase)):
        with pytest.raises(CorruptState, match="where a"):
            wire.decode_entry(raw, wrong_kind, before)
        with pytest.raises(CorruptState, match="holds a StoredItem"):
            wire.decode_entry(pickled_before(StoredItem({}, *item)), wrong_kind, before)


def test_a_workers_engine_clock_is_its_oldest_partitions_and_a_stall_shows_as_deadlines_waiting():
    """What Prometheus scrapes (DeadlinesLagging): read at the scrape, so that a worker that
    stops stepping still shows its deadlines waiting longer."""
    events = scenario(5, cases=10)
    cluster = MemoryCluster(TOPOLOGY, ITEMS, now=moment(UNTIL), seed=1)
    cluster.send_events(events)
    cluster.run()
    registry = cluster.metrics.registry
    clocks = {p: book.book.now for p, book in cluster.stages[TOPOLOGY.events].books.items()}
    assert len(clocks) == TOPOLOGY.partitions and len(set(clocks.values())) > 1, "the partitions' clocks differ"
    oldest = min(clocks.values())
    assert registry.get_sample_value("permitwatch_engine_clock_seconds") == oldest.timestamp()
    behind = (moment(UNTIL) - oldest).total_seconds()
    assert registry.get_sample_value("permitwatch_engine_clock_behind_seconds") == behind
    cluster.clock.set(moment(UNTIL) + timedelta(hours=1))  # nothing steps: no tick, no event
    assert registry.get_sample_value("permitwatch_engine_clock_behind_seconds") == behind + 3600
    cluster.tick(moment(UNTIL) + timedelta(hours=1))
    cluster.run()
    assert registry.get_sample_value("permitwatch_engine_clock_behind_seconds") == 0
    assert registry.get_sample_value("permitwatch_open_cases") == sum(
        len(book.cases) for book in cluster.stages[TOPOLOGY.events].books.values())


def test_a_rebalance_that_does_not_end_shows_its_deadlines_waiting_and_a_partition_gone_stops_counting():
    """Revoked partitions keep their clocks until the next assignment (ClockStalled fires for a
    worker stuck in a rebalance instead of reading 0); those assigned elsewhere are dropped then,
    and one judged again reports its book's clock."""
    cluster = MemoryCluster(TOPOLOGY, ITEMS, now=moment(UNTIL), seed=1)
    cluster.send_events(scenario(5, cases=10))
    cluster.run()
    stage, registry = cluster.stages[TOPOLOGY.events], cluster.metrics.registry
    clocks = {p: book.book.now for p, book in stage.books.items()}
    oldest = min(clocks.values())
    for partition in range(TOPOLOGY.partitions):  # a rebalance: everything revoked
        stage.reset(partition)
    assert not stage.books
    cluster.clock.set(moment(UNTIL) + timedelta(hours=1))
    assert registry.get_sample_value("permitwatch_engine_clock_seconds") == oldest.timestamp()
    assert registry.get_sample_value("permitwatch_engine_clock_behind_seconds") == \
        (moment(UNTIL) - oldest).total_seconds() + 3600
    newest = max(clocks, key=clocks.__getitem__)
    stage.assigned([newest])  # the others went to another worker
    assert registry.get_sample_value("permitwatch_engine_clock_seconds") == clocks[newest].timestamp()
    cluster.tick(moment(UNTIL) + timedelta(hours=1))
    cluster.run()  # judging again: the books' clocks take over
    assert registry.get_sample_value("permitwatch_engine_clock_behind_seconds") == 0
    assert not stage.held_clocks
    for partition in list(stage.books):
        stage.reset(partition)
    stage.assigned([])
    assert math.isnan(registry.get_sample_value("permitwatch_engine_clock_seconds"))
    assert registry.get_sample_value("permitwatch_engine_clock_behind_seconds") == 0
