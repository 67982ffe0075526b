"""Writing scorecards: a terminal table, CSV and JSON."""

from __future__ import annotations

import csv
from pathlib import Path

import orjson

from permitwatch.models.scorecard import ScorecardRow

COLUMNS = ("department", "item_code", "accepted", "decided", "on_time_statutory_rate", "on_time_promised_rate",
           "median_working_days", "p90_working_days", "referrals")


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def render_table(rows: list[ScorecardRow]) -> str:
    header = ["department", "item", "accepted", "decided", "on time (law)", "on time (promise)", "median WD",
              "p90 WD", "referrals", "alerts"]
    body = [[_cell(getattr(row, c)) for c in COLUMNS] + [", ".join(f"{k} {v}" for k, v in row.alerts.items()) or "-"]
            for row in rows]
    widths = [max(len(str(r[i])) for r in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_csv(rows: list[ScorecardRow], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*COLUMNS, "on_time_statutory", "with_promise", "on_time_promised", "alerts",
                         "period_from", "period_to"])
        for row in rows:
            writer.writerow([getattr(row, c) for c in COLUMNS] + [
                row.on_time_statutory, row.with_promise, row.on_time_promised,
                ";".join(f"{k}={v}" for k, v in row.alerts.items()), row.period_from.isoformat(),
                row.period_to.isoformat()])


def write_json(rows: list[ScorecardRow], path: Path) -> None:
    path.write_bytes(orjson.dumps([row.model_dump(mode="json") for row in rows], option=orjson.OPT_INDENT_2))
