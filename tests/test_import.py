"""Importing history: government feed records through the mapping file, and the realdata CSV."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from permitwatch.api.cli import main
from permitwatch.models.files import load_structured
from permitwatch.models.mapping import FeedMapping
from permitwatch.streams.inputs.feeds import MappedCounts, MappingError, map_records, parse_time
from permitwatch.streams.inputs.readers import Record, read_jsonl
from permitwatch.streams.store import Store
from tests.factory import CaseEvents

ROOT = Path(__file__).resolve().parent.parent
MAPPING = ROOT / "deploy" / "mappings" / "gbt39046.yaml"
SAMPLE = ROOT / "tests" / "data" / "gbt39046-sample.jsonl"


@pytest.mark.parametrize("text", ["20260302T091500", "2026030209:15:00", "2026-03-02T09:15:00+08:00",
                                  "2026-03-02 09:15:00"])
def test_the_feeds_timestamp_formats(text):
    assert parse_time(text, "+08:00").isoformat() == "2026-03-02T09:15:00+08:00"


def test_unknown_timestamp_format_is_named():
    with pytest.raises(MappingError, match="not in a known format"):
        parse_time("02/03/2026", "+08:00")


def test_gbt_records_become_events_through_the_mapping():
    counts, errors = MappedCounts(), []
    events = [orjson.loads(r.raw) for _, r in map_records(read_jsonl([SAMPLE]), load_structured(MAPPING, FeedMapping),
                                                           counts, errors)]
    assert [e["type"].split(".", 3)[-1] for e in events] == [
        "application.submitted", "application.accepted", "step.completed", "procedure.started", "decision.made",
        "licence.issued"]
    submitted, accepted, step, extension, decision, _ = events
    assert submitted["data"]["channel"] == "online" and len(submitted["data"]["materials"]) == 3
    assert accepted["data"]["promised_deadline"] == "2026-03-16" and accepted["time"] == "2026-03-02T10:20:00+08:00"
    assert step["data"] == {"step": "review", "officer": "科长-李四", "action": "pass"}
    assert extension["data"] == {"kind": "extension", "approved_by": "局长-王五", "notified": True, "working_days": 10}
    assert decision["data"]["outcome"] == "grant"
    assert counts.unmapped == 1 and "unknown data set '不存在'" in errors[0][1]
    again = [orjson.loads(r.raw)["id"] for _, r in map_records(read_jsonl([SAMPLE]),
                                                                load_structured(MAPPING, FeedMapping), MappedCounts(), [])]
    assert again == [e["id"] for e in events]  # re-importing is recognised as duplicates


def test_a_mappings_whole_number_is_digits_not_whatever_int_reads():
    """`as: int` read Python's int(): "5_0" was fifty working days, true one."""
    extension = orjson.loads(SAMPLE.read_bytes().splitlines()[3])
    mapping = load_structured(MAPPING, FeedMapping)
    for given, days in (("12", 12), (12, 12), (" 12 ", 12), (12.0, 12), ("5_0", None), ("٥", None), (True, None),
                        (5.5, None)):
        counts, errors = MappedCounts(), []
        record = Record(f"{SAMPLE.name}:4", orjson.dumps({**extension, "特别程序时限": given}))
        events = [orjson.loads(r.raw) for _, r in map_records([record], mapping, counts, errors)]
        if days is None:
            assert counts.unmapped == 1 and "特别程序时限: " in errors[0][1] and "not a whole number" in errors[0][1]
        else:
            assert [event["data"]["working_days"] for event in events] == [days], given


def test_import_command_loads_history_for_an_audit(tmp_path, capsys):
    data = tmp_path / "audit"
    assert main(["import", str(SAMPLE), "--format", "feed", "--mapping", str(MAPPING), "--data-dir", str(data),
                 "--until", "2026-06-30"]) == 0
    store = Store(data / "permitwatch.sqlite")
    assert store.count("journal") == 6 and store.count("dead_letters") == 1
    rules = [r[0] for r in store.reader.execute("SELECT rule || '/' || signal FROM alerts ORDER BY seq")]
    # No catalog: the item is unknown, judged with the law's defaults and no promise (EVENTS.md).
    assert rules == ["PW-002/warning", "PW-011/red"]
    assert main(["import", str(SAMPLE), "--format", "feed", "--mapping", str(MAPPING), "--data-dir", str(data)]) == 0
    assert "duplicates 6" in capsys.readouterr().out


def test_import_refuses_an_event_with_nan_as_every_runtime_does(tmp_path, capsys):
    """NaN in an attribute the models ignore is not JSON: `invalid_json`, with why, as replay and
    the APIs say (import read the time with the strict reader first, and called it `schema`)."""
    good = orjson.dumps(CaseEvents("SZ-IMP").submitted("2026-03-02 09:00").model_dump(mode="json"))
    spoilt = orjson.dumps(CaseEvents("SZ-NAN").submitted("2026-03-02 09:00").model_dump(mode="json"))
    events = tmp_path / "events.jsonl"
    events.write_bytes(good + b"\n" + spoilt[:-1] + b', "zzext": NaN}\n')
    data = tmp_path / "audit"
    assert main(["import", str(events), "--format", "jsonl", "--data-dir", str(data), "--until", "2026-06-30"]) == 0
    store = Store(data / "permitwatch.sqlite")
    [(category, reason)] = store.reader.execute("SELECT category, reason FROM dead_letters").fetchall()
    assert category == "invalid_json" and "NaN" in reason and store.count("journal") == 1


def test_import_refuses_a_data_directory_in_use(tmp_path, capsys):
    from permitwatch.streams.datadir import DataDir

    holder = DataDir(tmp_path).hold()
    try:
        assert main(["import", str(SAMPLE), "--format", "feed", "--mapping", str(MAPPING),
                     "--data-dir", str(tmp_path)]) == 2
        assert "in use by another permitwatch process" in capsys.readouterr().err
    finally:
        import os

        os.close(holder)
