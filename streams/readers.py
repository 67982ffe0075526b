"""Input readers: each yields `Record`s (where a line came from, and its original bytes).

- `jsonl`: one CloudEvent per line, in file order (EVENTS.md replay). `.gz` files are read too.
- `realdata-csv`: the flat permit-log CSV of the real permit logs, mapped to CloudEvents (docs/realdata.md).
"""

from __future__ import annotations

import csv
import gzip
import io
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO

import orjson

from models.events import TYPE_PREFIX


@dataclass(frozen=True, slots=True)
class Record:
    origin: str
    raw: bytes


def open_binary(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def read_jsonl(paths: Iterable[Path]) -> Iterator[Record]:
    for path in paths:
        with open_binary(path) as handle:
            for number, line in enumerate(handle, start=1):
                line = line.rstrip(b"\r\n")
                if line.strip():
                    yield Record(f"{path}:{number}", line)


# ---------------------------------------------------------------- realdata CSV

CANONICAL_TYPES = {
    "submitted": "application.submitted",
    "accepted": "application.accepted",
    "correction_requested": "correction.requested",
    "supplemented": "correction.supplied",
    "decision": "decision.made",
    "certificate_issued": "licence.issued",
    "withdrawn": "application.withdrawn",
    "term_extended": "procedure.started",
    "suspended": "procedure.started",
    "objection": "hearing.requested",
}
_DENIAL_WORDS = ("reject", "stop", "unlicensed", "denied", "refus")


@dataclass
class RealdataMapping:
    """What the CSV reader mapped and what it left out (reported in the replay summary)."""

    rows: int = 0
    mapped: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)


def _dataset(path: Path) -> str:
    return path.name.split(".")[0].upper().replace("_", "-")


def _row_event(row: dict, item_code: str, case_first: dict[str, dict]) -> dict | None:
    kind = CANONICAL_TYPES.get(row["canonical"])
    if kind is None:
        return None
    case_id, extra = row["case_id"], orjson.loads(row["extra"] or "{}")
    first = case_first.get(case_id, {})
    officer = extra.get("resource") or first.get("resource")
    department = extra.get("department") or extra.get("org") or first.get("department") or first.get("org")
    data: dict = {"item_code": item_code}
    if department:
        data["department"] = department
    if officer:
        data["officer"] = officer
    activity = row["activity"]
    if kind == "application.submitted":
        data.update(
            department=department or "unknown",
            applicant_id=case_id,
            channel="online" if str(extra.get("channel", "")).lower() == "internet" else "window",
            materials=[],
            officer=officer or "unknown",
        )
    elif kind == "application.accepted":
        # The logs have no receipt numbers; the accepting activity is the written receipt itself.
        data["receipt_no"] = f"{activity} #{row['seq']}"
        if first.get("deadline"):
            data["promised_deadline"] = first["deadline"][:10]
    elif kind == "correction.requested":
        data.update(notice_no=f"{activity} #{row['seq']}", materials=[])
    elif kind == "correction.supplied":
        data["materials"] = []
    elif kind == "decision.made":
        denial = any(word in activity.lower() for word in _DENIAL_WORDS)
        data.update(outcome="deny" if denial else "grant", reasons=activity, remedies_notified=True)
    elif kind == "procedure.started":
        if row["canonical"] == "term_extended":
            data.update(kind="extension", approved_by=officer or "", notified=True)
        else:
            data.update(kind="other", notified=True)
    return {
        "specversion": "1.0",
        "id": f"{case_id}#{row['seq']}",
        "source": f"/realdata/{item_code.lower()}",
        "type": TYPE_PREFIX + kind,
        "time": row["timestamp"],
        "subject": case_id,
        "datacontenttype": "application/json",
        "data": data,
    }


def read_realdata_csv(paths: Iterable[Path], mapping: RealdataMapping) -> Iterator[Record]:
    """Rows of every file, sorted by timestamp (a stable sort: ties keep file order), as events.

    The CSV is an export grouped by case, not an arrival log; sorting by time replays it as the
    monitor would have received it live."""
    rows: list[tuple[datetime, int, str, dict]] = []
    order = 0
    for path in paths:
        item_code = _dataset(path)
        case_first: dict[str, dict] = {}
        with open_binary(path) as handle:
            for line_no, row in enumerate(csv.DictReader(io.TextIOWrapper(handle, encoding="utf-8")), start=2):
                mapping.rows += 1
                if row["case_id"] not in case_first:
                    case_first[row["case_id"]] = orjson.loads(row["extra"] or "{}")
                event = _row_event(row, item_code, case_first)
                if event is None:
                    mapping.skipped[row["activity"]] += 1
                    continue
                mapping.mapped[event["type"][len(TYPE_PREFIX):]] += 1
                rows.append((datetime.fromisoformat(row["timestamp"]), order, f"{path}:{line_no}", event))
                order += 1
    rows.sort(key=lambda r: (r[0], r[1]))
    for _, _, origin, event in rows:
        yield Record(origin, orjson.dumps(event))
