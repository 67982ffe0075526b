"""Government data feeds to CloudEvents, through a mapping file (models/mapping.py, docs/import.md).

Records are JSON lines. Timestamps come in the feeds' formats: `YYYYMMDDThhmmss`,
`YYYYMMDDhh:mm:ss` or ISO 8601; one without an offset is in the mapping's `timezone`. A record that
cannot be mapped is reported with the reason, never dropped silently.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import orjson

from permitwatch.models.common import whole_number
from permitwatch.models.errors import InvalidInput
from permitwatch.models.events import TYPE_PREFIX
from permitwatch.models.mapping import EventSpec, FeedMapping, FieldSpec
from permitwatch.streams.inputs.readers import Record

_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})T?(\d{2}):?(\d{2}):?(\d{2})$")


class MappingError(InvalidInput):
    """This record cannot become an event; the message says why."""


def parse_time(text: str, zone: str) -> datetime:
    """`20260302T091500`, `2026030209:15:00`, or ISO 8601; naive values get `zone`."""
    value = str(text).strip()
    match = _COMPACT.match(value)
    if match:
        moment = datetime(*map(int, match.groups()))
    else:
        try:
            moment = datetime.fromisoformat(value.replace(" ", "T", 1))
        except ValueError:
            raise MappingError(f"time {value!r} is not in a known format (YYYYMMDDThhmmss, "
                               "YYYYMMDDhh:mm:ss, ISO 8601)") from None
    if moment.tzinfo is None:
        sign = -1 if zone.startswith("-") else 1
        hours, minutes = zone.lstrip("+-").split(":")
        moment = moment.replace(tzinfo=timezone(sign * timedelta(hours=int(hours), minutes=int(minutes))))
    return moment


def _value(spec: FieldSpec, record: dict, zone: str):
    if spec.field is None:
        return spec.const
    raw = record.get(spec.field)
    if raw in (None, ""):
        return spec.default
    if spec.map is not None:
        if str(raw) not in spec.map:
            if spec.default is None:
                raise MappingError(f"{spec.field}: value {raw!r} is not in the mapping ({', '.join(spec.map)})")
            return spec.default
        return spec.map[str(raw)]
    if spec.split is not None:
        return [part.strip() for part in str(raw).split(spec.split) if part.strip()]
    if spec.as_ == "int":
        try:
            return whole_number(raw)
        except ValueError as exc:
            raise MappingError(f"{spec.field}: {exc}") from None
    if spec.as_ == "bool":
        return str(raw).strip().lower() in ("1", "true", "是", "y", "yes")
    if spec.as_ == "date":
        return parse_time(raw, zone).date().isoformat()
    if spec.as_ == "time":
        return parse_time(raw, zone).isoformat()
    return str(raw)


def _applies(spec: EventSpec, record: dict) -> bool:
    if any(str(record.get(field, "")) != value for field, value in spec.when.items()):
        return False
    return spec.when_present is None or record.get(spec.when_present) not in (None, "")


@dataclass
class MappedCounts:
    records: int = 0
    events: int = 0
    unmapped: int = 0


def map_records(records: Iterable[Record], mapping: FeedMapping, counts: MappedCounts,
                errors: list[tuple[Record, str]]) -> Iterator[tuple[datetime, Record]]:
    """(event time, CloudEvent record) for every event the records make; failures go to `errors`."""
    for record in records:
        counts.records += 1
        try:
            fields = orjson.loads(record.raw)
            if not isinstance(fields, dict):
                raise MappingError("a record must be a JSON object")
            made = list(_events(fields, mapping))
        except (MappingError, orjson.JSONDecodeError, ValueError) as exc:
            counts.unmapped += 1
            errors.append((record, str(exc)))
            continue
        for index, (moment, event) in enumerate(made):
            counts.events += 1
            yield moment, Record(f"{record.origin}#{index}", orjson.dumps(event))


def _events(fields: dict, mapping: FeedMapping) -> Iterator[tuple[datetime, dict]]:
    dataset = fields.get(mapping.dataset_field)
    spec = mapping.datasets.get(str(dataset))
    if spec is None:
        raise MappingError(f"{mapping.dataset_field}: unknown data set {dataset!r}; the mapping knows "
                           f"{', '.join(mapping.datasets)}")
    case_id = fields.get(mapping.case_field)
    if not case_id:
        raise MappingError(f"{mapping.case_field}: missing (the case id)")
    key = "\x1f".join(str(fields.get(f, "")) for f in mapping.id_fields)
    matched = False
    for number, event_spec in enumerate(spec.events):
        if not _applies(event_spec, fields):
            continue
        matched = True
        if not fields.get(event_spec.time):
            raise MappingError(f"{event_spec.time}: missing (the time of a {event_spec.type} event)")
        moment = parse_time(fields[event_spec.time], mapping.timezone)
        data = {name: value for name, field in event_spec.data.items()
                if (value := _value(field, fields, mapping.timezone)) is not None}
        digest = hashlib.sha256(f"{key}\x1f{number}".encode()).hexdigest()[:24]
        yield moment, {
            "specversion": "1.0",
            "id": f"import-{digest}",
            "source": mapping.source,
            "type": TYPE_PREFIX + event_spec.type,
            "time": moment.isoformat(),
            "subject": str(case_id),
            "datacontenttype": "application/json",
            "data": data,
        }
    if not matched:
        raise MappingError(f"no event rule of data set {dataset!r} applies to this record")
