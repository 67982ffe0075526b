"""Stored state (Kafka table values, the embedded checkpoint, retired cases) names classes by tag,
never by module path, and is read back with the engine's own types only: a tampered one is
refused before anything it names is called. What the previous version wrote (plain pickles)
still reads, under the same check."""

from __future__ import annotations

import io
import logging
import os
import pickle
import sys
import types
from zoneinfo import ZoneInfo

import orjson
import pytest

from permitwatch.alerts.case import hash_applicant
from permitwatch.alerts.clock import WorkingCalendar
from permitwatch.alerts.engine import Engine
from permitwatch.models.errors import CorruptState
from permitwatch.models.events import parse_event
from permitwatch.models.settings import RuleSettings
from permitwatch.streams import state_codec
from permitwatch.streams.kafka.wire import STATE_FORMAT, decode_entry, decode_pickled
from permitwatch.streams.simulation.city import CitySimulator
from permitwatch.streams.simulation.sample_catalog import SAMPLE_CATALOG
from tests import legacy_state
from tests.factory import CaseEvents, moment


def city_engine() -> Engine:
    return Engine(SAMPLE_CATALOG.by_code(), WorkingCalendar(), RuleSettings())


def outputs(engine: Engine, lines: list[bytes]) -> list[bytes]:
    found = []
    for line in lines:
        emitted = engine.process(parse_event(line))
        found += [orjson.dumps(a.model_dump(mode="json")) for a in emitted.alerts]
        found += [orjson.dumps(r.model_dump(mode="json")) for r in emitted.referrals]
    return found


def test_the_engine_state_of_a_city_reads_back_and_carries_on_exactly_like_the_original():
    """Referrals, PW-013 items, timers, stats: every class an engine's state is made of, as JSON
    (format 5, the embedded checkpoint's since 2026-12-01) and as the pickle of the releases
    before (format 2)."""
    lines = [raw for _, raw in CitySimulator(seed=3, violation_rate=0.3, cases_per_day=150).events(cases=3000)]
    half = len(lines) // 2
    original = city_engine()
    assert outputs(original, lines[:half])
    stored = [state_codec.dumps_engine(original.state()), legacy_state.dumps(original.state())]
    assert stored[0].startswith(state_codec.ENGINE_MAGIC) and b"permitwatch" not in stored[0]
    expected = outputs(original, lines[half:])
    for state in stored:
        restored = city_engine()
        restored.load_state(state_codec.loads(state))
        assert restored.referrals.referrals and restored.city.items, "the city has referrals and PW-013 items"
        assert restored.city.state().pending, "and city inputs waiting for its clock"
        assert outputs(restored, lines[half:]) == expected


def test_an_engine_state_reads_back_equal_with_every_kind_of_waiting_input_retired_cases_and_folds():
    from datetime import UTC, datetime

    from permitwatch.alerts.city import AlertInput, ExemptionInput, ItemUpdate
    from permitwatch.models.common import LEGAL_TZ
    from permitwatch.models.referrals import Exemption
    from permitwatch.streams.retired import CompactCases

    engine = city_engine()
    lines = [raw for _, raw in CitySimulator(seed=5, violation_rate=0.3, cases_per_day=150).events(cases=3000)]
    outputs(engine, lines[:len(lines) // 2])
    state = engine.state()
    repeated = datetime(1990, 9, 15, 17, 30, tzinfo=UTC).astimezone(LEGAL_TZ)
    item = next(item for item in state.city.items.values() if item.alerts)
    case_id, standing = next(iter(item.cases.items()))
    report = next(w.report for w in state.city.referrals if w.report)
    alert = next(iter(item.alerts.values()))
    exemption = Exemption(ground="other", basis="SZ-XK art. 15(4)", reason="r", recorded_by="op", recorded_at=repeated)
    state.city.pending += [
        (repeated, case_id, 900, ItemUpdate(item.item_code, case_id, standing, ("E-9", repeated), report)),
        (repeated, case_id, 901, ItemUpdate(item.item_code, case_id, None, (case_id, repeated))),
        (repeated, case_id, 902, AlertInput((alert, alert), None, repeated)),
        (repeated, case_id, 903, ExemptionInput(case_id, exemption, repeated, "t/0/9", b"\xff not utf-8")),
    ]
    retired = CompactCases()
    retired["SZ-GONE"] = _every_fact_of_a_case()
    state.retired = retired
    state.now = repeated
    back = state_codec.loads(state_codec.dumps_engine(state))
    assert back.cases == state.cases and list(back.cases) == list(state.cases)
    assert list(back.timers.scheduled_all()) == list(state.timers.scheduled_all())
    assert back.now == state.now and back.now.fold == 1 and back.stats == state.stats and back.ids == state.ids
    assert back.city == state.city and repr(back.city.pending) == repr(state.city.pending)
    assert [list(i.cases) for i in back.city.items.values()] == [list(i.cases) for i in state.city.items.values()]
    assert dict(back.retired.items()) == dict(retired.items())


@pytest.mark.parametrize("record", [
    b'["engine", 2]', b'["engine", 1, [], [], null]', b'["engine", 1' + b", []" * 12 + b"]",
])
def test_an_engine_state_that_cannot_be_one_is_refused_as_corrupt_and_briefly(record):
    from permitwatch.models.errors import CorruptState

    with pytest.raises(CorruptState) as refused:
        state_codec.loads(state_codec.ENGINE_MAGIC + record)
    assert len(str(refused.value)) < 400


class _Call:
    """Pickles as a call of `function(*args)`: what an attacker would write."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


@pytest.mark.parametrize("payload", [
    lambda path: _Call(open, str(path), "w"),
    lambda path: _Call(os.system, f"touch {path}"),
    lambda path: _Call(eval, f"open({str(path)!r}, 'w')"),
    lambda path: _Call(getattr, ZoneInfo, "from_file"),
    lambda path: _Call(hash_applicant, str(path)),
    lambda path: {"cases": [_Call(pickle.loads, b"")]},
], ids=["open", "os.system", "eval", "getattr", "a domain function", "nested"])
def test_stored_state_naming_anything_else_is_refused_before_it_runs(tmp_path, payload):
    target = tmp_path / "written-by-the-payload"
    raw = pickle.dumps(payload(target), protocol=pickle.HIGHEST_PROTOCOL)
    with pytest.raises(state_codec.UnsafeState, match="state pickle"):
        state_codec.loads(raw)  # the previous version's format
    with pytest.raises(state_codec.UnsafeState):
        decode_pickled(bytes([4]) + raw, object)  # a table value of the releases before
    with pytest.raises(CorruptState, match="not one"):
        decode_entry(bytes([STATE_FORMAT]) + raw, "referral", object)  # since table format 5: no pickle
    with pytest.raises(state_codec.UnsafeState, match="stored state names"):
        state_codec.loads(state_codec.MAGIC + raw)  # the current format: no global at all
    assert not target.exists()


@pytest.fixture
def fresh_registry():
    """The codec's registry built again, as a new release would build it on start; and again
    after the test, for the tests after it."""
    state_codec._registry.cache_clear()
    yield
    state_codec._registry.cache_clear()


def test_the_state_names_no_module_so_moving_a_class_changes_nothing_stored(monkeypatch, fresh_registry):
    """What is written names no class; what format 2 wrote names classes by code, so it still
    reads after a class moved."""
    from permitwatch.alerts import case

    engine = city_engine()
    outputs(engine, [raw for _, raw in CitySimulator(seed=5, cases_per_day=60).events(cases=300)])
    stored = state_codec.dumps_engine(engine.state())
    assert b"permitwatch" not in stored and b"alerts." not in stored and b"CaseState" not in stored
    before = legacy_state.dumps(engine.state(), with_layouts=False)
    moved = types.ModuleType("permitwatch.alerts.somewhere_else")
    moved.CaseState = case.CaseState
    monkeypatch.setitem(sys.modules, moved.__name__, moved)
    monkeypatch.setattr(case.CaseState, "__module__", moved.__name__)
    monkeypatch.setitem(state_codec._RUNTIME_CLASSES, moved.__name__, ("CaseState",))
    state_codec._registry.cache_clear()
    assert state_codec.dumps_engine(engine.state()) == stored
    assert state_codec.loads(stored).cases.keys() == engine.state().cases.keys()
    assert state_codec.loads(before).cases == engine.state().cases


def test_a_code_the_registry_does_not_know_is_refused():
    from permitwatch.alerts.case import Fact

    stored = legacy_state.dumps(Fact(None, "E-1"))
    code = state_codec._code("Fact").to_bytes(4, "little")
    assert stored.count(code) == 1
    with pytest.raises(state_codec.UnsafeState, match="extension code"):
        state_codec.loads(stored.replace(code, (int.from_bytes(code, "little") + 1).to_bytes(4, "little")))


def test_state_written_in_format_one_reads_back():
    """Changelogs and checkpoints written earlier on 2026-11-30: classes as persistent ids."""

    class FormatOne(pickle.Pickler):
        def persistent_id(self, obj):
            if type(obj) is ZoneInfo:
                return f"zone:{obj.key}"
            if isinstance(obj, type):
                return legacy_state.tags().get(obj)
            return None

    engine = city_engine()
    outputs(engine, [raw for _, raw in CitySimulator(seed=6, cases_per_day=60).events(cases=200)])
    out = io.BytesIO()
    FormatOne(out, protocol=5).dump(engine.state())
    assert state_codec.loads(b"PWS\x01" + out.getvalue()).cases == engine.state().cases


def test_the_monitor_refuses_a_tampered_checkpoint_and_rebuilds_from_the_journal(runtimes, tmp_path, caplog):
    case = CaseEvents("SZ-PICKLE-1")
    runtime = runtimes(tmp_path, now="2026-03-02 12:00")
    assert runtime.post([case.submitted("2026-03-02 09:00"), case.accepted("2026-03-02 10:00")]).status_code == 202
    checkpoint = runtime.embedded.monitor.checkpoint_path
    runtime.stop()
    assert checkpoint.exists()

    with caplog.at_level(logging.INFO, logger="permitwatch.embedded"):
        again = runtimes(tmp_path, now="2026-03-02 12:00")
    assert "checkpoint at journal 2, 0 rows replayed" in caplog.text, "a clean restart reads its checkpoint"
    again.stop()

    # Format 5 (2026-12-01): a JSON header line with its checksum, then the engine's state as JSON,
    # no pickle. The one pickle of formats 3 and 4, written by the releases before, still reads.
    header_line, _, state = checkpoint.read_bytes().partition(b"\n")
    header = orjson.loads(header_line)
    assert header["format"] == 5 and state.startswith(state_codec.ENGINE_MAGIC)
    assert isinstance(header.pop("crc32"), int)  # what format 4 did not have
    header.update(format=4, catalog=header["catalog"].encode(), calendars=header["calendars"].encode(),
                  state=state_codec.loads(state))
    checkpoint.write_bytes(legacy_state.dumps(header))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="permitwatch.embedded"):
        again = runtimes(tmp_path, now="2026-03-02 12:00")
    assert "checkpoint at journal 2, 0 rows replayed" in caplog.text, "a format-4 checkpoint reads"
    again.stop()

    target = tmp_path / "written-by-the-payload"
    checkpoint.write_bytes(pickle.dumps(_Call(open, str(target), "w"), protocol=pickle.HIGHEST_PROTOCOL))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="permitwatch.embedded"):
        third = runtimes(tmp_path, now="2026-03-02 12:00")
    assert not target.exists()
    assert "is not part of the engine's state" in caplog.text
    assert "checkpoint at journal 0, 2 rows replayed" in caplog.text
    assert "SZ-PICKLE-1" in third.embedded.monitor.engine.cases


@pytest.mark.parametrize("header, state", [
    ({"format": 6}, None), ({"watermark": "2"}, None), ({"watermark": None}, None), ({"watermark": ...}, None),
    ({"catalog": "{"}, None), ({"calendars": "{}"}, None), ({"calendars": "7"}, None), ({"catalog": 7}, None),
    ({}, b""), ({}, b"PWS\x03[]"), ({}, legacy_state.dumps(None)), ({"watermark": -5}, None),
    ({"format": 5.0}, None), ({"format": 4}, None),
], ids=["format 6", "watermark text", "watermark null", "no watermark", "catalog not JSON", "calendars an object",
        "calendars a number", "catalog a number", "no state", "a case record", "a pickle", "watermark negative",
        "format a float", "format 4 in JSON"])
def test_a_checkpoint_with_anything_wrong_is_refused_for_the_monitor_to_replay_its_journal(header, state):
    """`_read_checkpoint` raises, which the monitor logs before replaying the whole journal,
    instead of starting from a checkpoint it misreads or failing to start."""
    from permitwatch.streams.embedded.monitor import _checksum, _read_checkpoint

    engine = city_engine()
    good = {"format": 5, "watermark": 2, "catalog": '{"items": []}', "calendars": "[]"}

    def checkpoint(header: dict, state: bytes) -> bytes:
        return orjson.dumps({**header, "crc32": _checksum(header, state)}) + b"\n" + state

    assert _read_checkpoint(checkpoint(good, state_codec.dumps_engine(engine.state()))).watermark == 2
    written = {key: value for key, value in {**good, **header}.items() if value is not ...}
    with pytest.raises(Exception) as refused:  # any exception: the monitor catches them all
        _read_checkpoint(checkpoint(written, state_codec.dumps_engine(engine.state()) if state is None else state))
    assert len(str(refused.value)) < 400


def test_a_checkpoint_changed_on_disk_is_refused_by_its_checksum():
    """A digit of the journal position changed would replay from the wrong row: refused, so the
    monitor replays the whole journal."""
    from permitwatch.streams.embedded.monitor import _checksum, _read_checkpoint

    header = {"format": 5, "watermark": 40, "catalog": '{"items": []}', "calendars": "[]"}
    state = state_codec.dumps_engine(city_engine().state())
    data = orjson.dumps({**header, "crc32": _checksum(header, state)}) + b"\n" + state
    assert _read_checkpoint(data).watermark == 40
    for damaged in (data.replace(b'"watermark":40', b'"watermark":42'), data[:-2] + b"1]", data.replace(b'"crc32"', b'"crc"')):
        assert damaged != data
        with pytest.raises(ValueError, match="checksum"):
            _read_checkpoint(damaged)


def test_damaged_table_values_are_corrupt_state_whatever_is_wrong_with_them():
    """A value cut short, an instant out of range, a record of another kind where a case belongs,
    a pickle of the releases before that asks its reader for gigabytes: each is refused as
    `CorruptState` (a case's events then go to dead letters, the rest of its partition is judged)."""
    from permitwatch.alerts.case import CaseState
    from permitwatch.streams.kafka import wire

    case = CaseState("SZ-D-1", last_time=moment("2026-03-02 09:00"))
    entry = wire.encode_case(2, None, case)
    marker = wire.encode_marker(wire.Marker(41, moment("2026-03-02 09:00")))
    damaged = [
        (wire.decode_case, entry[:10]), (wire.decode_case, b""),
        (wire.decode_case, entry[:3] + (2**62).to_bytes(8, "big") + entry[11:]),  # wake-up past year 9999
        (wire.decode_case, bytes([3]) + entry[1:19] + state_codec.dumps_item({("a", "b")}, {})),
        (wire.decode_marker, marker[:5]), (wire.decode_marker, marker[:9] + (2**62).to_bytes(8, "big")),
        (wire.decode_queued, b"\x00" * 8 + b"{}"),
        # LONG_BINPUT at index 2**28: pickle's reader would size its memo to 2 GB before failing.
        (wire.decode_pickled, bytes([4]) + state_codec.MAGIC + b"\x80\x05N" + b"r" + (2**28).to_bytes(4, "little") + b"."),
    ]
    for decode, raw in damaged:
        with pytest.raises(CorruptState) as refused:
            decode(raw) if decode is not wire.decode_pickled else decode(raw, object)
        assert len(str(refused.value)) < 400


def test_a_pickle_written_before_the_packages_moved_under_permitwatch_reads_back(monkeypatch):
    """Checkpoints and changelogs written before 2026-11-30 name `alerts.case.Fact`, not
    `permitwatch.alerts.case.Fact`."""
    from datetime import datetime

    from permitwatch.alerts import case

    fact = case.Fact(datetime(2026, 3, 2, 9, tzinfo=ZoneInfo("Asia/Shanghai")), "E-1")
    monkeypatch.setitem(sys.modules, "alerts.case", case)
    monkeypatch.setattr(case.Fact, "__module__", "alerts.case")
    old = pickle.dumps(fact, protocol=pickle.HIGHEST_PROTOCOL)
    monkeypatch.undo()
    assert b"alerts.case" in old and b"permitwatch" not in old
    assert state_codec.loads(old) == fact


def _every_fact_of_a_case():
    """A case with every field set, one of its instants outside legal time and one in the hour
    that Shanghai's clocks repeated in 1986 (fold 1)."""
    from datetime import UTC, date, datetime
    from decimal import Decimal

    from permitwatch.alerts import case as c
    from permitwatch.models.common import LEGAL_TZ

    events = CaseEvents("SZ-LAYOUT-1", item="SZ-PLAN-001", department="SZ-PLAN")
    engine = city_engine()
    for event in [events.submitted("2026-03-02 09:00"), events.fee("2026-03-03 10:00", "50.00", fee_code="FEE-X")]:
        engine.process(event)
    alerts = engine.cases["SZ-LAYOUT-1"].alerts
    at = datetime(2026, 3, 2, 9, tzinfo=LEGAL_TZ)
    repeated = datetime(1986, 9, 13, 17, 30, tzinfo=UTC).astimezone(LEGAL_TZ)
    assert repeated.fold == 1
    fact = c.Fact(at, "E-1")
    officer = c.Officer("o-1", at, "E-2", repeated, "E-1")
    return c.CaseState(
        "SZ-LAYOUT-1", "ITEM-STD", "D-MARKET", "applicant-hash", fact,
        [c.Receipt(at, "E-1", frozenset({"M1"}), True)], [c.Notice(at, "E-3", frozenset({"M3"}))],
        fact, date(2026, 3, 20), fact, fact, fact,
        [c.ProcedureStart(at, "E-4", "expert_review", "head-1", True, 5)], [c.ProcedureEnd(at, "E-5", "expert_review")],
        fact, fact, fact, [c.Decision(at, "E-6", "grant", True, False)], fact, fact,
        [c.Fee(at, "E-7", "FEE-1", Decimal("50.00"), False)], officer, officer, officer,
        {2**64 - 1: 2**32 - 1}, repeated, 4, alerts, True, {"PW-001": at, "PW-002": datetime(2026, 3, 9, tzinfo=UTC)},
        at,
    )


def test_a_case_is_written_by_its_layout_and_reads_back_with_every_fact_zone_and_fold():
    from permitwatch.alerts.case import CaseState

    case = _every_fact_of_a_case()
    assert case.alerts, "the case holds alerts"
    stored = legacy_state.dumps(case)
    assert state_codec._code("CaseState").to_bytes(4, "little") not in stored, "not written as a class"
    back = state_codec.loads(stored)
    assert isinstance(back, CaseState) and back == case
    for name in ("submitted", "receipts", "notices", "procedure_starts", "procedure_ends", "decisions", "fees",
                 "handler", "last_time", "dues", "expires", "promised_day"):
        assert repr(getattr(back, name)) == repr(getattr(case, name)), name
    assert back.last_time.fold == 1 and back.handler.first_time.fold == 1
    assert back.dues["PW-002"].tzinfo is not None and back.dues["PW-002"].utcoffset().total_seconds() == 0


def test_a_case_alone_is_written_as_json_and_reads_back_with_every_fact_zone_fold_and_alert():
    """Format 3, how the runtimes store a case (a Kafka table's entry, a retired case): JSON, so
    reading it names no class; its alerts in the contract's JSON."""
    from permitwatch.alerts.case import CaseState
    from permitwatch.models.common import record_bytes
    from permitwatch.streams.kafka.wire import decode_case, encode_case

    case = _every_fact_of_a_case()
    stored = state_codec.dumps_case(case)
    assert stored.startswith(state_codec.CASE_MAGIC)
    record = orjson.loads(stored[len(state_codec.CASE_MAGIC):])
    assert record[1] == "SZ-LAYOUT-1" and record[-1] == state_codec.micros(case.expires)
    back = state_codec.loads(stored)
    assert isinstance(back, CaseState) and back == case
    for name in ("submitted", "procedure_starts", "procedure_ends", "decisions", "fees", "handler", "last_time",
                 "dues", "expires", "promised_day", "seen"):
        assert repr(getattr(back, name)) == repr(getattr(case, name)), name
    assert back.receipts == case.receipts and isinstance(back.receipts[0].materials, frozenset)
    assert back.last_time.fold == 1 and back.handler.first_time.fold == 1
    assert back.dues["PW-002"].utcoffset().total_seconds() == 0 and back.dues["PW-001"].tzinfo is case.dues["PW-001"].tzinfo
    assert [record_bytes(alert) for alert in back.alerts.values()] == [record_bytes(alert) for alert in case.alerts.values()]
    assert decode_case(encode_case(3, None, case)) == case
    # A table entry of table format 3 (a format-2 pickle after the same header) still reads; one
    # of a later table format must be JSON.
    pickled = encode_case(3, None, case).replace(stored, legacy_state.dumps(case))
    assert pickled != encode_case(3, None, case) and decode_case(bytes([3]) + pickled[1:]) == case
    with pytest.raises(CorruptState, match="not one"):
        decode_case(pickled)


def test_a_case_alert_in_the_hour_shanghai_repeated_reads_back_in_legal_time():
    """An alert's instants come back in legal time, not the fixed offset its JSON says: in the
    repeated hour of 1990 the two compare differently (and everywhere else ten times slower)."""
    from datetime import UTC, date, datetime

    from permitwatch.alerts.case import CaseState
    from permitwatch.models.alerts import Alert, DeadlineInfo, LegalBasis, Message
    from permitwatch.models.common import LEGAL_TZ

    repeated = datetime(1990, 9, 15, 17, 30, tzinfo=UTC).astimezone(LEGAL_TZ)
    assert repeated.fold == 1
    alert = Alert(alert_id="PW-001-X", rule="PW-001", signal="red", status="active", case_id="X",
                  legal_basis=[LegalBasis(cite="c", text_zh="t")], fact="f", evidence=["e"], detected_at=repeated,
                  message=Message(zh="z", en="e"),
                  deadline=DeadlineInfo(name="decision_deadline", last_day=date(1990, 9, 16), instant=repeated,
                                        calendar_version="v", provisional=True, basis=["b"]))
    case = CaseState("X", alerts={alert.alert_id: alert})
    back = state_codec.loads(state_codec.dumps_case(case)).alerts[alert.alert_id]
    assert back == alert
    for instant in (back.detected_at, back.deadline.instant):
        assert instant.tzinfo is LEGAL_TZ and instant.fold == 1
    earlier_fold = datetime(1990, 9, 16, 1, 15, tzinfo=LEGAL_TZ, fold=1)
    assert (back.detected_at > earlier_fold) == (alert.detected_at > earlier_fold)


def test_the_citys_entries_are_json_and_read_back_exactly_with_their_tuples_zones_and_folds():
    """Every referral working copy, PW-013 item, item case and PW-013 record of a city, written as
    the Kafka city stage writes them and read back: equal, and a referral's last face (`shown`)
    equal as the next version's comparison sees it. Plus the repeated hour and an exemption
    decided in another offset."""
    from dataclasses import replace
    from datetime import UTC, datetime, timedelta

    from permitwatch.models.common import LEGAL_TZ
    from permitwatch.models.referrals import Exemption

    engine = city_engine()
    lines = [raw for _, raw in CitySimulator(seed=5, violation_rate=0.3, cases_per_day=150).events(cases=3000)]
    assert outputs(engine, lines[:len(lines) // 2])  # half: the items still hold cases
    workings = list(engine.referrals.referrals.values())
    assert any(w.shown and w.shown.mitigations for w in workings) and any(w.findings for w in workings)
    repeated = datetime(1990, 9, 15, 17, 30, tzinfo=UTC).astimezone(LEGAL_TZ)
    exemption = Exemption(ground="other", basis="SZ-XK art. 15(4)", reason="r", recorded_by="op",
                          recorded_at=repeated, decided_at=repeated.astimezone(UTC) - timedelta(hours=1))
    workings.append(replace(workings[0], exemption=exemption, as_of=repeated,
                            shown=workings[0].shown._replace(exemption=exemption, mitigations=(("PW-001", repeated, "e"),))))
    for working in workings:
        back = state_codec.loads(state_codec.dumps_referral(working))
        assert back == working and back.shown == working.shown and repr(back.shown) == repr(working.shown)
        assert repr(back.report) == repr(working.report) and repr(back.standing) == repr(working.standing)
    back = state_codec.loads(state_codec.dumps_referral(workings[-1]))
    assert back.as_of.fold == 1 and back.exemption.recorded_at.tzinfo is LEGAL_TZ
    assert back.exemption.decided_at.utcoffset() == timedelta(0) and back.shown.mitigations[0][1].fold == 1
    items = [state for state in engine.city.items.values() if state.cases]
    assert items and any(state.alerts for state in items)
    for state in items:
        assert state_codec.loads(state_codec.dumps_item(state.pending, state.left)) == (state.pending, state.left)
        for case_id, standing in state.cases.items():
            report = engine.city.reports.get(state.item_code, {}).get(case_id)
            back = state_codec.loads(state_codec.dumps_item_case(standing, report))
            assert back == (standing, report) and repr(back) == repr((standing, report))
        for alert in state.alerts.values():
            assert state_codec.loads(state_codec.dumps_alert(alert)) == alert


@pytest.mark.parametrize("record", [
    b'["nothing", 1]', b'["referral", 2]', b'{"kind": "item"}', b'["item", 1, [["a"]], []]',
    b'["item", 1, [], [["a", "2026-03-09T00:00:00"]]]', b'["alert", 1, ["k", 0, null, {"alert_id": "x"}]]',
    b'["item_case", 1, null, null, null, null, null, [null, null], null, null]', b'not json',
    b'["referral", 1, ["R", "C", [], null, null, 1000000000000000000000000000000, null, null, null, []]]',
    b'["referral", 1, ["R", "C", [], null, null, -9223372036854775809, null, null, null, []]]',
])
def test_a_city_entry_that_cannot_be_one_is_refused_as_corrupt_and_briefly(record):
    from permitwatch.models.errors import CorruptState

    with pytest.raises(CorruptState) as refused:
        state_codec.loads(state_codec.ENTRY_MAGIC + record)
    assert len(str(refused.value)) < 400


def _case_record_with(**changes) -> bytes:
    from datetime import datetime

    from permitwatch.alerts.case import CaseState
    from permitwatch.models.common import LEGAL_TZ

    at = datetime(2026, 3, 2, 9, tzinfo=LEGAL_TZ)
    record = orjson.loads(state_codec.dumps_case(CaseState("C-1", last_time=at, dues={"PW-001": at}))[4:])
    fields = state_codec._CASE_FIELDS
    for name, value in changes.items():  # after the version; `seen` is two lists (keys, digests)
        record[1 + fields.index(name) + (fields.index(name) > fields.index("seen"))] = value
    return state_codec.CASE_MAGIC + orjson.dumps(record)


@pytest.mark.parametrize("record", [
    *(state_codec.CASE_MAGIC + record for record in (
        b"[2]", b"{}", b"[1, \"too short\"]", b"not json", b"[1" + b", null" * 32 + b"]")),
    _case_record_with(dues={"PW-001": "2026-03-09T00:00:00"}),  # an instant without its offset
    _case_record_with(last_step="4"), _case_record_with(referable=1), _case_record_with(case_id=7),
    # read, it could not be written again (orjson's integers are 64 bits)
    _case_record_with(last_step=424242).replace(b"424242", str(2**64).encode()),
    _case_record_with(last_time=1.5), _case_record_with(alerts=[["k", 0, None, {"alert_id": "x"}]]),
    _case_record_with(case_id="x" * 1_000_000, referable="y" * 1_000_000),
])
def test_a_case_record_that_cannot_be_a_case_is_refused_as_corrupt_and_briefly(record):
    """Refused when read, not made into a case that fails later (a tick over every case of its
    partition); the reason, which goes to the log and the dead letter, stays short."""
    from permitwatch.models.errors import CorruptState

    with pytest.raises(CorruptState) as refused:
        state_codec.loads(record)
    assert len(str(refused.value)) < 400


def test_a_case_written_as_a_class_before_the_layout_still_reads():
    """Tables and checkpoints written before the layout (2026-11-30) hold cases as objects."""

    case = _every_fact_of_a_case()
    stored = legacy_state.dumps(case, with_layouts=False)
    assert state_codec._code("CaseState").to_bytes(4, "little") in stored
    assert state_codec.loads(stored) == case


def test_a_case_layout_this_release_does_not_know_is_refused_and_a_new_field_needs_a_new_layout(monkeypatch):
    from permitwatch.models.errors import CorruptState

    stored = legacy_state.dumps(_every_fact_of_a_case())
    future = stored.replace(b"K\x01", b"K\x02", 1)  # the layout's version, its first element
    assert future != stored
    with pytest.raises(CorruptState, match="layout"):
        state_codec.loads(future)
    monkeypatch.setattr(state_codec, "_CASE_FIELDS", state_codec._CASE_FIELDS[:-1])
    with pytest.raises(RuntimeError, match="new layout version"):
        state_codec._check_case_layout()
    from permitwatch.alerts.case import Fee
    from permitwatch.alerts.referrals import _Shown

    for cls in (Fee, _Shown):  # a field of a fact of a case, of a referral's face
        monkeypatch.setitem(state_codec._WRITTEN_FIELDS, cls, state_codec._WRITTEN_FIELDS[cls][:-1])
        with pytest.raises(RuntimeError, match=f"{cls.__name__}'s fields"):
            state_codec._check_written_fields()
        monkeypatch.undo()


def test_instants_converted_once_read_back_the_same_whether_remembered_or_not(monkeypatch):
    """`_instant` remembers conversions by object: a case's instants are the same objects from one
    state to the next. What it writes must not depend on what it remembers."""
    from datetime import datetime, timedelta

    from permitwatch.models.common import LEGAL_TZ

    monkeypatch.setattr(state_codec, "_INSTANTS_KEPT", 8)
    start = datetime(2026, 3, 4, 9, 30, 15, 250, tzinfo=LEGAL_TZ)
    instants = [start + timedelta(minutes=7 * n, microseconds=n) for n in range(50)]
    first = [state_codec._instant(moment) for moment in instants]
    again = [state_codec._instant(moment) for moment in reversed(instants)][::-1]
    assert first == again == [state_codec.micros(moment) for moment in instants]
    assert len(state_codec._written_instants) <= 8
    # Fresh objects (their predecessors freed, their ids free for reuse) are converted anew.
    del instants
    fresh = [start + timedelta(minutes=7 * n, microseconds=n) for n in range(50)]
    assert [state_codec._instant(moment) for moment in fresh] == first
    assert [state_codec.from_micros(value) for value in first] == fresh


def test_an_alert_is_written_once_and_reads_back_the_same_whether_remembered_or_not(monkeypatch):
    """A case's alerts and a referral's are the same objects from one state to the next: each
    one's JSON is made once and copied. State written before (format 2: an alert as a stream of
    its own, or, earlier, as an object) still reads."""
    from permitwatch.models.alerts import Alert

    case = _every_fact_of_a_case()
    [alert] = list(case.alerts.values())[:1]
    stored = state_codec.dumps_case(case)
    assert state_codec._alerts_json[id(alert)][0] is alert
    state_codec._alerts_json.clear()
    assert state_codec.dumps_case(case) == stored
    back = state_codec.loads(stored)
    assert back == case and all(isinstance(a, Alert) for a in back.alerts.values())
    assert repr(back.alerts) == repr(case.alerts)
    for with_layouts in (True, False):
        before = legacy_state.dumps(case, with_layouts)
        assert (state_codec._code("AlertLayout").to_bytes(4, "little") in before) == with_layouts
        assert state_codec.loads(before) == case
