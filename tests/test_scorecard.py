"""Scorecards against a hand-computed expectation."""

from __future__ import annotations

from pathlib import Path

import orjson

from permitwatch.alerts.clock import LegalClock
from permitwatch.alerts.rules.base import Context
from permitwatch.alerts.scorecard import case_states, scorecards
from permitwatch.api.cli import main
from permitwatch.models.settings import RuleSettings
from tests.factory import CaseEvents, catalog, moment
from tests.harness import BUILTIN_CALENDAR, run

ITEMS = catalog(
    {"item_code": "ITEM-PROM", "name": "p", "department": "D-A", "promised_limit": {"value": 10}},
    {"item_code": "ITEM-B", "name": "b", "department": "D-B"},
)


def log():
    a1, a2 = CaseEvents("A1", department="D-A"), CaseEvents("A2", department="D-A")
    a3 = CaseEvents("A3", item="ITEM-PROM", department="D-A")
    b1, b2 = CaseEvents("B1", item="ITEM-B", department="D-B"), CaseEvents("B2", item="ITEM-B", department="D-B")
    return [
        b2.submitted("2026-02-20"), b2.accepted("2026-02-24"),
        a1.submitted("2026-03-02"), a1.accepted("2026-03-03"),
        a2.submitted("2026-03-02"), a2.accepted("2026-03-03"),
        a3.submitted("2026-03-02"), a3.accepted("2026-03-03"),
        b1.submitted("2026-03-05 09:00"), b1.accepted("2026-03-05 10:00"),
        b2.decided("2026-03-05"), b2.published("2026-03-06"),
        a1.decided("2026-03-10"), a1.licence("2026-03-11"), a1.published("2026-03-11"),
        a3.decided("2026-03-20", "deny"),
        a2.decided("2026-04-07"), a2.licence("2026-04-08"), a2.published("2026-04-08"),
    ]


START, END = moment("2026-03-01 00:00"), moment("2026-05-01 00:00")

# A1 decided in 5 WD, A2 in 24 WD (after its 2026-03-31 deadline; Qingming 04-04..06 off), A3 in
# 13 WD but after its 10 WD promise; B1 never decided; B2 accepted before the period.
EXPECTED = {
    ("D-A", "*"): dict(accepted=3, decided=3, on_time_statutory=2, on_time_statutory_rate=0.6667, with_promise=1,
                       on_time_promised=0, on_time_promised_rate=0.0, median_working_days=13.0, p90_working_days=24,
                       alerts={"PW-001/red": 1, "PW-002/warning": 2, "PW-002/yellow": 1}, referrals=1),
    ("D-A", "ITEM-PROM"): dict(accepted=1, decided=1, on_time_statutory=1, on_time_statutory_rate=1.0,
                               with_promise=1, on_time_promised=0, on_time_promised_rate=0.0,
                               median_working_days=13.0, p90_working_days=13,
                               alerts={"PW-002/warning": 1, "PW-002/yellow": 1}, referrals=0),
    ("D-A", "ITEM-STD"): dict(accepted=2, decided=2, on_time_statutory=1, on_time_statutory_rate=0.5, with_promise=0,
                              on_time_promised=0, on_time_promised_rate=None, median_working_days=14.5,
                              p90_working_days=24, alerts={"PW-001/red": 1, "PW-002/warning": 1}, referrals=1),
    # B2: accepted 02-24, decided 03-05 = 8 WD (02-28 is a make-up Saturday).
    ("D-B", "*"): dict(accepted=1, decided=1, on_time_statutory=1, on_time_statutory_rate=1.0, with_promise=0,
                       on_time_promised=0, on_time_promised_rate=None, median_working_days=8.0, p90_working_days=8,
                       alerts={"PW-001/red": 1, "PW-002/warning": 1}, referrals=1),
    ("D-B", "ITEM-B"): dict(accepted=1, decided=1, on_time_statutory=1, on_time_statutory_rate=1.0, with_promise=0,
                            on_time_promised=0, on_time_promised_rate=None, median_working_days=8.0,
                            p90_working_days=8, alerts={"PW-001/red": 1, "PW-002/warning": 1}, referrals=1),
}


def test_scorecard_matches_the_hand_computed_expectation():
    events = log()
    alerts = run(events, until="2026-05-01", catalog=ITEMS)
    ctx = Context(LegalClock(BUILTIN_CALENDAR), RuleSettings(), ITEMS.by_code())
    rows = scorecards(case_states(events), alerts, START, END, ctx)
    got = {(r.department, r.item_code): r.model_dump(exclude={"department", "item_code", "period_from", "period_to"})
           for r in rows}
    assert got == EXPECTED


def test_scorecard_command_prints_and_writes_csv_and_json(tmp_path: Path, capsys):
    events = log()
    (tmp_path / "events.jsonl").write_bytes(b"".join(orjson.dumps(e.model_dump(mode="json")) + b"\n" for e in events))
    (tmp_path / "catalog.json").write_bytes(orjson.dumps(ITEMS.model_dump(mode="json")))
    alerts = tmp_path / "alerts.jsonl"
    assert main(["replay", str(tmp_path / "events.jsonl"), "--catalog", str(tmp_path / "catalog.json"),
                 "--until", "2026-04-30", "--alerts-out", str(alerts)]) == 0
    assert main(["scorecard", "--events", str(tmp_path / "events.jsonl"), "--alerts", str(alerts),
                 "--catalog", str(tmp_path / "catalog.json"), "--from", "2026-03-01", "--to", "2026-04-30",
                 "--csv", str(tmp_path / "s.csv"), "--json", str(tmp_path / "s.json")]) == 0
    table = capsys.readouterr().out
    assert "D-A" in table and "0.67" in table and "PW-001/red 1" in table
    assert (tmp_path / "s.csv").read_text().splitlines()[0].startswith("department,item_code,accepted")
    assert len(orjson.loads((tmp_path / "s.json").read_bytes())) == 5
