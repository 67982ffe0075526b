"""`permitwatch replay` as EVENTS.md specifies it: file order, simulated clock, byte-identical output."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from api.cli import main
from tests.factory import CaseEvents
from tests.test_engine import ITEMS, scenario

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
