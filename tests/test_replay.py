"""`permitwatch replay` as EVENTS.md specifies it: file order, simulated clock, byte-identical output."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from permitwatch.api.cli import main
from tests.factory import CaseEvents
from tests.scenarios import ITEMS, scenario

REALDATA = Path(__file__).resolve().parent / "data" / "realdata"


def write_events(path: Path, events) -> Path:
    path.write_bytes(b"".join(orjson.dumps(e.model_dump(mode="json")) + b"\n" for e in events))
    return path


@pytest.fixture
def catalog_file(tmp_path: Path) -> Path:
    path = tmp_path / "catalog.json"
    path.write_bytes(orjson.dumps(ITEMS.model_dump(mode="json")))
    return path


def replay(tmp_path: Path, catalog: Path, *files: Path, name: str = "alerts.jsonl", extra=()) -> bytes:
    out = tmp_path / name
    assert main(["replay", *map(str, files), "--catalog", str(catalog), "--until", "2026-09-01T00:00:00+08:00",
                 "--alerts-out", str(out), *extra]) == 0
    return out.read_bytes()


def test_replaying_twice_gives_identical_bytes(tmp_path, catalog_file):
    events = write_events(tmp_path / "events.jsonl", scenario(3, cases=12))
    first = replay(tmp_path, catalog_file, events, name="a.jsonl")
    second = replay(tmp_path, catalog_file, events, name="b.jsonl")
    assert first == second and first.count(b"\n") > 5


def test_every_event_duplicated_gives_the_same_alerts(tmp_path, catalog_file):
    events = scenario(5, cases=12)
    once = replay(tmp_path, catalog_file, write_events(tmp_path / "once.jsonl", events), name="a.jsonl")
    doubled = write_events(tmp_path / "twice.jsonl", [e for event in events for e in (event, event)])
    assert replay(tmp_path, catalog_file, doubled, name="b.jsonl") == once


def test_files_are_read_in_order_and_a_late_compliant_event_retracts(tmp_path, catalog_file):
    a, b = CaseEvents("SZ-A"), CaseEvents("SZ-B")
    first = write_events(tmp_path / "1.jsonl", [a.submitted("2026-03-02"), a.accepted("2026-03-03"),
                                                b.submitted("2026-04-10")])
    second = write_events(tmp_path / "2.jsonl", [a.decided("2026-03-30 10:00")])
    lines = [orjson.loads(line) for line in replay(tmp_path, catalog_file, first, second).splitlines()]
    overdue = [(x["status"], x["alert_id"]) for x in lines if x["rule"] == "PW-001" and x["case_id"] == "SZ-A"]
    assert [s for s, _ in overdue] == ["active", "retracted"] and overdue[0][1] == overdue[1][1]


def test_invalid_lines_go_to_the_dead_letter_file_and_the_summary(tmp_path, catalog_file, capsys):
    c = CaseEvents()
    good = orjson.dumps(c.submitted("2026-03-02").model_dump(mode="json"))
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join([good, b"{not json", b'{"specversion": "1.0"}', b"\xff\xfe", good, b""]))
    replay(tmp_path, catalog_file, events)
    dead = [orjson.loads(line) for line in (tmp_path / "alerts.dead-letter.jsonl").read_bytes().splitlines()]
    assert [d["category"] for d in dead] == ["invalid_json", "missing_type", "invalid_utf8"]
    assert dead[0]["origin"].endswith("events.jsonl:2") and dead[0]["raw"] == "{not json"
    assert dead[2]["raw_base64"] == "//4="
    summary = capsys.readouterr().out
    assert "dead-lettered       3" in summary and "duplicates ignored  1" in summary


def test_errors_a_user_can_cause_are_clear(tmp_path, capsys):
    assert main(["replay", str(tmp_path / "missing.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err
    bad_catalog = tmp_path / "catalog.json"
    bad_catalog.write_text('[{"item_code": "A", "name": "n"}]')
    events = write_events(tmp_path / "e.jsonl", [])
    assert main(["replay", str(events), "--catalog", str(bad_catalog)]) == 2
    assert "items.0.department: Field required" in capsys.readouterr().err


def test_realdata_wabo_log_replays_end_to_end(tmp_path, capsys):
    source = REALDATA / "wabo_receipt_phase.events.csv.gz"
    out = tmp_path / "wabo.jsonl"
    assert main(["replay", str(source), "--format", "realdata-csv", "--alerts-out", str(out)]) == 0
    summary = capsys.readouterr().out
    assert "realdata rows       8577  mapped 2813" in summary
    assert "events applied      2813" in summary and "dead-lettered       0" in summary
    assert "cases seen          1434" in summary
    alerts = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert {a["rule"] for a in alerts} >= {"PW-001", "PW-003"}
    assert all(a["item_code"] == "WABO-RECEIPT-PHASE" for a in alerts)


def test_realdata_numeric_ids_become_strings_and_unreadable_rows_dead_letters(tmp_path, capsys):
    """EVENTS.md: readers of other formats turn numeric officer and applicant ids into their decimal
    strings (a real building-permit log writes `resource` as a JSON number: every event of it was
    dead-lettered). A row no event can be made of is a dead letter with the reason, not a crash."""
    import csv
    import io

    rows = [
        ("P-1", 1, "2026-03-02T09:00:00+08:00", "Register", "submitted", "exact", '{"resource": 1001, "org": 77}'),
        ("P-1", 2, "2026-03-03T09:00:00+08:00", "Receive", "accepted", "exact", '{"resource": 1004.0}'),
        ("P-1", 3, "2026-04-20T09:00:00+08:00", "Decide", "decision", "exact", '{"resource": 1009}'),
        ("P-2", 1, "2026-03-02 10:00", "Register", "submitted", "exact", "{}"),
        ("P-3", 1, "2026-03-02T10:00:00+08:00", "Register", "submitted", "exact", "[1, 2]"),
        ("P-4", 1, "not a time", "Register", "submitted", "exact", '{"resource": "x"}'),
    ]
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["case_id", "seq", "timestamp", "activity", "canonical", "ts_quality", "extra"])
    writer.writerows(rows)
    source = tmp_path / "building_permits.events.csv"
    source.write_text(text.getvalue())
    out = tmp_path / "alerts.jsonl"
    referrals = tmp_path / "referrals.jsonl"
    assert main(["replay", str(source), "--format", "realdata-csv", "--alerts-out", str(out),
                 "--referrals-out", str(referrals)]) == 0
    summary = capsys.readouterr().out
    assert "events applied      3" in summary and "unreadable 3" in summary
    letters = [orjson.loads(line) for line in (tmp_path / "alerts.dead-letter.jsonl").read_bytes().splitlines()]
    assert sorted(d["reason"].split(":")[0] for d in letters) == ["extra", "timestamp", "timestamp"]
    assert {d["category"] for d in letters} == {"unmapped"}
    [referral] = {orjson.loads(line)["referral_id"]: orjson.loads(line)
                  for line in referrals.read_bytes().splitlines()}.values()
    assert {o["role"]: o["officer"] for o in referral["officers"]} == {
        "handler": "1004", "reviewer": None, "approver": "1009"}
    assert referral["department"] == "77"


def test_simulate_writes_a_city_that_replays(tmp_path, capsys):
    events, truth = tmp_path / "city.jsonl", tmp_path / "truth.jsonl"
    assert main(["simulate", "--cases", "40", "--seed", "5", "--departments", "1", "--out", str(events),
                 "--ground-truth", str(truth)]) == 0
    lines = events.read_bytes().splitlines()
    assert len(lines) > 100 and {orjson.loads(line)["data"].get("department") for line in lines} <= {"DEPT-01", None}
    assert truth.read_bytes() and "replay with `--catalog` deploy/reference/catalog.json" in capsys.readouterr().err
    catalog = Path(__file__).resolve().parent.parent / "deploy" / "reference" / "catalog.json"
    assert main(["replay", str(events), "--catalog", str(catalog), "--alerts-out", str(tmp_path / "a.jsonl")]) == 0
    assert "dead-lettered       0" in capsys.readouterr().out
    again = tmp_path / "again.jsonl"
    assert main(["simulate", "--cases", "40", "--seed", "5", "--departments", "1", "--out", str(again)]) == 0
    assert again.read_bytes() == events.read_bytes()


def test_source_and_id_identify_an_event_across_the_log(tmp_path, catalog_file, capsys):
    """EVENTS.md: a repeat with the same content is a duplicate (counted), whatever its spacing; the
    same source and id with other content is a conflict (not applied, dead-lettered), in the same
    case or another; the same id from another source is another event."""
    a, b = CaseEvents("SZ-A"), CaseEvents("SZ-B")
    submitted = a.submitted("2026-03-02 09:00")
    same = orjson.loads(orjson.dumps(submitted.model_dump(mode="json")))
    other_officer = {**same, "data": {**same["data"], "officer": "o-someone-else"}}
    other_case = {**same, "subject": "SZ-B"}
    other_source = {**b.submitted("2026-03-02 09:30").model_dump(mode="json"), "id": same["id"],
                    "source": "/another/window"}
    lines = [orjson.dumps(same), orjson.dumps(same, option=orjson.OPT_INDENT_2).replace(b"\n", b" "),
             orjson.dumps(other_officer), orjson.dumps(other_case), orjson.dumps(other_source)]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    replay(tmp_path, catalog_file, events)
    summary = capsys.readouterr().out
    assert "events applied      2" in summary and "duplicates ignored  1" in summary
    letters = [orjson.loads(line) for line in (tmp_path / "alerts.dead-letter.jsonl").read_bytes().splitlines()]
    assert [(d["category"], d["origin"].rsplit(":", 1)[1]) for d in letters] == [
        ("conflicting_duplicate", "3"), ("conflicting_duplicate", "4")]
    assert "applied before with other content" in letters[0]["reason"]


def test_a_file_starting_with_a_utf8_bom_replays(tmp_path, catalog_file, capsys):
    c = CaseEvents("SZ-BOM")
    events = tmp_path / "bom.jsonl"
    events.write_bytes(b"\xef\xbb\xbf" + orjson.dumps(c.submitted("2026-03-02 09:00").model_dump(mode="json")) + b"\n")
    replay(tmp_path, catalog_file, events)
    assert "events applied      1" in capsys.readouterr().out


def test_scorecard_of_a_realdata_csv_needs_the_format_and_says_so(tmp_path, capsys):
    source = REALDATA / "wabo_receipt_phase.events.csv.gz"
    alerts = tmp_path / "alerts.jsonl"
    assert main(["replay", str(source), "--format", "realdata-csv", "--alerts-out", str(alerts)]) == 0
    period = ["--from", "2010-01-01", "--to", "2012-12-31"]
    assert main(["scorecard", "--events", str(source), "--alerts", str(alerts), *period]) == 2
    assert "--format realdata-csv" in capsys.readouterr().err
    assert main(["scorecard", "--events", str(source), "--format", "realdata-csv", "--alerts", str(alerts),
                 *period]) == 0
    assert "WABO-RECEIPT-PHASE" in capsys.readouterr().out
