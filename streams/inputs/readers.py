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

from permitwatch.models.errors import InvalidInput
from permitwatch.models.events import TYPE_PREFIX, InvalidEvent, parse_event_with_digest
from permitwatch.models.files import without_bom
from permitwatch.models.views import Rejection


@dataclass(frozen=True, slots=True)
class Record:
    origin: str
    raw: bytes
    refused: str | None = None
    """Why the reader could make no event of it (`raw` is then what it read): a dead letter."""


def open_binary(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def read_jsonl(paths: Iterable[Path]) -> Iterator[Record]:
    for path in paths:
        with open_binary(path) as handle:
            for number, line in enumerate(handle, start=1):
                line = line.rstrip(b"\r\n")
                if number == 1:
                    line = without_bom(line)
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
    refused: int = 0
    """Rows no event could be made of (each a dead letter with the reason)."""


def _dataset(path: Path) -> str:
    return path.name.split(".")[0].upper().replace("_", "-")


class UnreadableRow(InvalidInput):
    """A row no event can be made of; the message says which field and why."""


def _extra(row: dict) -> dict:
    try:
        extra = orjson.loads(row["extra"] or "{}")
    except orjson.JSONDecodeError as exc:
        raise UnreadableRow(f"extra: not valid JSON ({exc})") from None
    if not isinstance(extra, dict):
        raise UnreadableRow(f"extra: a JSON object expected, got {type(extra).__name__}")
    return extra


def _text(value: object) -> str | None:
    """An id as the contract wants it: a string. Logs exported by other tools write numeric ids as
    JSON numbers (EVENTS.md: readers turn them into their decimal strings)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return value if isinstance(value, str) and value else None


def _time(row: dict) -> datetime:
    try:
        moment = datetime.fromisoformat(row["timestamp"])
    except (TypeError, ValueError):
        raise UnreadableRow(f"timestamp: {row['timestamp']!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise UnreadableRow(f"timestamp: {row['timestamp']!r} has no timezone")
    return moment


def _row_event(row: dict, item_code: str, case_first: dict[str, dict]) -> dict | None:
    kind = CANONICAL_TYPES.get(row["canonical"])
    if kind is None:
        return None
    case_id, extra = row["case_id"], _extra(row)
    first = case_first.get(case_id, {})
    # The department is the case's; an officer is only who the row names (the first row's
    # resource would name the wrong person on later rows).
    officer = _text(extra.get("resource"))
    department = _text(extra.get("department")) or _text(extra.get("org")) or _text(first.get("department")) \
        or _text(first.get("org"))
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
            officer=officer or _text(first.get("resource")) or "unknown",
        )
    elif kind == "application.accepted":
        # The logs have no receipt numbers; the accepting activity is the written receipt itself.
        data["receipt_no"] = f"{activity} #{row['seq']}"
        deadline = first.get("deadline")
        if isinstance(deadline, str) and deadline:
            data["promised_deadline"] = deadline[:10]
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
    """Rows of every file, sorted by timestamp (a stable sort: ties keep file order), as events;
    first the rows no event can be made of, refused with the reason.

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
                origin = f"{path}:{line_no}"
                try:
                    if row["case_id"] not in case_first:
                        case_first[row["case_id"]] = _extra(row)
                    event = _row_event(row, item_code, case_first)
                    moment = _time(row) if event is not None else None
                except UnreadableRow as unreadable:
                    mapping.refused += 1
                    yield Record(origin, orjson.dumps(row), str(unreadable))
                    continue
                if event is None:
                    mapping.skipped[row["activity"]] += 1
                    continue
                mapping.mapped[event["type"][len(TYPE_PREFIX):]] += 1
                rows.append((moment, order, origin, event))
                order += 1
    rows.sort(key=lambda r: (r[0], r[1]))
    for _, _, origin, event in rows:
        yield Record(origin, orjson.dumps(event))


# ----- history: records in event-time order -----


def untimed(record: Record, index: int) -> Rejection:
    """Why a record with no usable time is refused (it cannot be put in time order): why it is no
    event at all, if it is not, as every runtime would say."""
    if record.refused:
        return Rejection(index=index, category="unmapped", reason=record.refused, origin=record.origin)
    try:
        parse_event_with_digest(record.raw)
    except InvalidEvent as invalid:
        return Rejection(index=index, category=invalid.category, reason=invalid.reason, origin=record.origin)
    return Rejection(index=index, category="schema", reason="time: missing, or not a timezone-aware ISO 8601 time",
                     origin=record.origin)


def timed(records: Iterable[Record]) -> list[tuple[datetime | None, Record]]:
    """Records paired with their event time (from the JSON, None when it has none), for sorting."""
    out = []
    for record in records:
        if record.refused is not None:
            out.append((None, record))
            continue
        try:
            moment = datetime.fromisoformat(orjson.loads(record.raw)["time"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            moment = None
        out.append((moment if moment is not None and moment.tzinfo is not None else None, record))
    return out
