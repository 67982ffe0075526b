"""What the Kafka runtime writes besides the contract's records: control records on the events
topic, the internal topics' messages, and the table values.

Internal messages are JSON with explicit decoders (a worker of the next version must read what
this one wrote). Table values are the engine's own state in the state codec, read back with those
types only (`streams.state_codec`): they are private to the workers (their changelog topics
should be writable by the workers only) and carry a format number, so a state of another shape
is refused rather than misread.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NamedTuple

import orjson

from permitwatch.alerts.case import CaseState, Fact
from permitwatch.alerts.city import AlertInput, CityInput, ExemptionInput, ItemUpdate, ReportInput
from permitwatch.alerts.referrals import CaseReport
from permitwatch.alerts.rules.pw013_out_of_order_grant import ItemCase
from permitwatch.models.alerts import Alert, Officers
from permitwatch.models.common import LEGAL_TZ
from permitwatch.models.errors import CorruptState
from permitwatch.models.referrals import Exemption
from permitwatch.models.views import ActionRecord
from permitwatch.streams import state_codec

CONTROL_HEADER = "permitwatch-control"
"""Records the workers write besides data carry this header: on the events topic (other consumers
of the topic skip them) tick and reference; on the city topic, clock and continue."""

SOURCE_HEADER = "permitwatch-source"
"""On the internal topics: the record that caused this one and its place among that record's
outputs, `topic/partition/offset/index`. A worker killed mid-step produces the step again; the
receiving stage keeps, per source partition, the last place it applied and skips what is not
after it, so a repeated older input never undoes a newer one."""

STATE_FORMAT = 5
"""The format number every table value starts with (markers, case entries, other values). 4 since
2026-12-01 (a case entry's state and the city header as JSON), 5 since later that day (the
city's other entries as JSON too: nothing written to the tables is a pickle any more): a worker of
a release before, which does not read 5, stops at the first marker instead of dead-lettering what it
cannot read. This release reads 3 and 4 too (`READ_FORMATS`): its tables need no migration."""
READ_FORMATS = frozenset({3, 4, STATE_FORMAT})


class StateFormatError(CorruptState):
    """Stored state of a format this version does not read."""


class Record(NamedTuple):
    """One consumed Kafka record, independent of the client library."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def origin(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"

    def header(self, name: str) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def source(self) -> tuple[tuple[str, int], tuple[int, int]] | None:
        """((topic, partition), (offset, index)) of the record this one was made from."""
        raw = self.header(SOURCE_HEADER)
        if raw is None:
            return None
        topic, partition, offset, index = raw.decode().rsplit("/", 3)
        return (topic, int(partition)), (int(offset), int(index))


def record_of(message) -> Record:
    """A consumed record of faust or aiokafka (their headers come as a mapping or as pairs)."""
    headers = message.headers or ()
    if isinstance(headers, Mapping):
        headers = headers.items()
    return Record(message.topic, message.partition, message.offset, message.key, message.value,
                  tuple((key, bytes(value)) for key, value in headers))


def action_value(action: ActionRecord) -> bytes:
    """An operator's action for the actions topic. Its `seq` is left out: there it is the record's
    offset + 1, the same in every API instance that reads the topic."""
    return orjson.dumps(action.model_dump(mode="json", exclude={"seq"}))


def action_of(record: Record) -> ActionRecord:
    """ValueError when the record is not an action."""
    fields = orjson.loads(record.value or b"null")
    if not isinstance(fields, dict):
        raise ValueError("an action is a JSON object")
    return ActionRecord.model_validate({**fields, "seq": record.offset + 1})


class Output(NamedTuple):
    """One record to produce. `partition` None: chosen from the key by the producer."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None = None
    headers: tuple[tuple[str, bytes], ...] = ()

    def made_from(self, record: Record, index: int) -> Output:
        place = f"{record.topic}/{record.partition}/{record.offset}/{index}".encode()
        return self._replace(headers=(*self.headers, (SOURCE_HEADER, place)))


def _instant(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).astimezone(LEGAL_TZ)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


# ----- control records on the events topic -----


class Tick(NamedTuple):
    """The clock of a worker reached `time`: deadlines of the partition up to it fire."""

    time: datetime


class PartitionClock(NamedTuple):
    """Partition `partition` of the events topic has been processed up to `time` (to the city
    stage, whose watermark is the oldest of these clocks)."""

    partition: int
    time: datetime


class Continue(NamedTuple):
    """The city stage left inputs its watermark lets through for its next step (it bounds the
    work of one step): sent to itself, so that it goes on without waiting for other input."""


class ReferenceChanged(NamedTuple):
    """The catalog or calendar topics changed; read them up to these offsets and judge again."""

    catalog_end: int
    calendar_end: int
    kinds: tuple[str, ...]


Control = Tick | PartitionClock | ReferenceChanged | Continue


def control_output(topic: str, partition: int, control: Control, key: bytes | None = None) -> Output:
    if isinstance(control, Tick):
        kind, body = b"tick", {"time": control.time.isoformat()}
    elif isinstance(control, Continue):
        kind, body = b"continue", {}
    elif isinstance(control, PartitionClock):
        kind, body = b"clock", {"partition": control.partition, "time": control.time.isoformat()}
    else:
        kind, body = b"reference", {"catalog_end": control.catalog_end, "calendar_end": control.calendar_end,
                                    "kinds": list(control.kinds)}
    return Output(topic, key, orjson.dumps(body), partition, ((CONTROL_HEADER, kind),))


def _control_kind(record: Record) -> bytes | None:
    return record.header(CONTROL_HEADER) if record.headers else None  # most records have no headers


def is_control(record: Record) -> bool:
    """Whether `record` is a control record rather than an ordinary event."""
    return _control_kind(record) is not None


def read_control(record: Record) -> Control | None:
    """The control carried by `record`, or None for an ordinary event. ValueError when malformed."""
    kind = _control_kind(record)
    if kind is None:
        return None
    try:
        body = orjson.loads(record.value or b"")
        if kind == b"tick":
            return Tick(_instant(body["time"]))
        if kind == b"continue":
            return Continue()
        if kind == b"clock":
            return PartitionClock(int(body["partition"]), _instant(body["time"]))
        if kind == b"reference":
            return ReferenceChanged(int(body["catalog_end"]), int(body["calendar_end"]), tuple(body["kinds"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed {kind.decode(errors='replace')} control record: {exc}") from None
    raise ValueError(f"unknown control record {kind.decode(errors='replace')!r}")


# ----- the city stage's input (PREFIX.city) -----


def _fact(fact: Fact | None) -> list | None:
    return None if fact is None else [fact.time.isoformat(), fact.event_id]


def _read_fact(value: list | None) -> Fact | None:
    return None if value is None else Fact(_instant(value[0]), value[1])


def _report(report: CaseReport | None) -> dict | None:
    if report is None:
        return None
    return {
        "case_id": report.case_id, "item_code": report.item_code, "department": report.department,
        "officers": [[role, officer, list(ids)] for role, officer, ids in report.officers],
        "remedies": [[rule, at.isoformat(), event_id] for rule, at, event_id in report.remedies],
        "revision": report.revision,
    }


def _read_report(body: dict | None) -> CaseReport | None:
    if body is None:
        return None
    return CaseReport(
        body["case_id"], body["item_code"], body["department"],
        tuple((role, officer, tuple(ids)) for role, officer, ids in body["officers"]),
        tuple((rule, _instant(at), event_id) for rule, at, event_id in body["remedies"]),
        body["revision"],
    )


def _standing(standing: ItemCase | None) -> dict | None:
    return None if standing is None else {
        "accepted": _fact(standing.accepted),
        "closed_at": _iso(standing.closed_at),
        "outcome": standing.outcome,
        "grant": _fact(standing.grant),
        "department": standing.department,
        "officers": standing.officers.model_dump(),
        "decided": _fact(standing.decided),
    }


def _read_standing(given: dict | None) -> ItemCase | None:
    return None if given is None else ItemCase(
        _read_fact(given["accepted"]), _instant(given["closed_at"]), given["outcome"], _read_fact(given["grant"]),
        given["department"], Officers(**given["officers"]), _read_fact(given["decided"]),
    )


class CityWork(NamedTuple):
    """One input of the city stage, with the clock of the events partition that sent it."""

    given: CityInput
    partition: int
    clock: datetime | None
    """The partition's promise that nothing it sends later is older than this."""


def encode_city_input(work: CityWork) -> bytes:
    given = work.given
    body: dict[str, Any] = {"partition": work.partition, "clock": _iso(work.clock), "at": given.at.isoformat()}
    if isinstance(given, ItemUpdate):
        body.update(kind="item", item_code=given.item_code, case_id=given.case_id, cause=given.cause[0],
                    standing=_standing(given.standing), report=_report(given.report))
    elif isinstance(given, AlertInput):
        body.update(kind="alerts", alerts=[alert.model_dump(mode="json") for alert in given.found],
                    report=_report(given.report))
    elif isinstance(given, ReportInput):
        body.update(kind="report", report=_report(given.report))
    else:
        body.update(kind="exemption", case_id=given.case_id, exemption=given.exemption.model_dump(mode="json"),
                    origin=given.origin, raw=given.raw.decode("utf-8", errors="replace"))
    return orjson.dumps(body)


def decode_city_input(raw: bytes) -> CityWork:
    body = orjson.loads(raw)
    kind, at = body["kind"], _instant(body["at"])
    if kind == "item":
        given: CityInput = ItemUpdate(body["item_code"], body["case_id"], _read_standing(body["standing"]),
                                      (body["cause"], at), _read_report(body["report"]))
    elif kind in ("alerts", "alert"):  # "alert": one alert, written before 2026-12-01
        alerts = body["alerts"] if kind == "alerts" else [body["alert"]]
        given = AlertInput(tuple(Alert.model_validate(alert) for alert in alerts), _read_report(body["report"]), at)
    elif kind == "report":
        given = ReportInput(_read_report(body["report"]), at)
    elif kind == "exemption":
        given = ExemptionInput(body["case_id"], Exemption.model_validate(body["exemption"]), at, body["origin"],
                               body["raw"].encode())
    else:
        raise ValueError(f"unknown city input {kind!r}")
    return CityWork(given, int(body["partition"]), _instant(body["clock"]))


_QUEUED = struct.Struct(">q")


def encode_queued(through: datetime, record: bytes) -> bytes:
    """A city input waiting in the city stage's table: when it goes through, and the city record
    it came in."""
    return _QUEUED.pack(_micros(through)) + record


def decode_queued(raw: bytes) -> tuple[datetime, CityWork]:
    with _reading("a queued city input"):
        return _from_micros(_QUEUED.unpack_from(raw)[0]), decode_city_input(raw[_QUEUED.size:])


@contextmanager
def _reading(what: str) -> Iterator[None]:
    """A stored value's own bytes that cannot be what they should (cut short, an instant out of
    range, a field missing) are `CorruptState`, as the state codec's records are."""
    try:
        yield
    except (struct.error, OverflowError, ValueError, KeyError, TypeError) as exc:
        raise CorruptState(f"{what} that cannot be read: {type(exc).__name__}: {str(exc)[:200]}") from None


# ----- table values -----

MARKER_PREFIX = b"\x00"
"""Keys the stages keep their own bookkeeping under (ids and codes never contain control
characters)."""

_MARKER = struct.Struct(">Bqq")


def marker_key(partition: int) -> bytes:
    return MARKER_PREFIX + b"applied/%d" % partition


REDO_PART_PREFIX = MARKER_PREFIX + b"redo/"


def redo_parts_prefix(partition: int, offset: int | None = None) -> bytes:
    """The keys of the redo parts of `partition`'s markers (of its marker of `offset`)."""
    return REDO_PART_PREFIX + (b"%d/" % partition if offset is None else b"%d/%d/" % (partition, offset))


def redo_part_key(partition: int, offset: int, index: int) -> bytes:
    """Where part `index` of the redo of `partition`'s marker of `offset` is kept (`Marker.redo`)."""
    return redo_parts_prefix(partition, offset) + b"%d" % index


def is_redo_part(key: bytes, value: bytes | None) -> bool:
    """Whether a redo entry stands for a part of the redo kept elsewhere (its value is empty) rather
    than a write (a part's deletion is a write)."""
    return value is not None and key.startswith(REDO_PART_PREFIX)


class Marker(NamedTuple):
    """Written in every step of a stage, in the same table (so the same changelog partition) as
    the step's state: the input offset that state includes, the partition's clock (cases), and
    the step's own writes (`redo`), which follow it, so that a changelog cut anywhere after it is
    completed on load. A redo larger than a record is written before the marker in parts, table
    entries of their own, each an entry of this redo with an empty value (`is_redo_part`)."""

    offset: int
    clock: datetime | None = None
    redo: tuple[tuple[bytes, bytes | None], ...] = ()


_LENGTH = struct.Struct(">i")


MARKER_WITH_PARTS = 6
"""The format of a marker whose redo continues in parts (since 2026-12-02): a release before
refuses it (`StateFormatError`) rather than take its parts for writes."""


def encode_marker(marker: Marker) -> bytes:
    with_parts = any(is_redo_part(key, value) for key, value in marker.redo)
    parts = [_MARKER.pack(MARKER_WITH_PARTS if with_parts else STATE_FORMAT, marker.offset, _micros(marker.clock))]
    for key, value in marker.redo:
        parts += [_LENGTH.pack(len(key)), key, _LENGTH.pack(-1 if value is None else len(value)), value or b""]
    return b"".join(parts)


def decode_marker(raw: bytes) -> Marker:
    with _reading("a marker"):
        return _marker(raw)


def _marker(raw: bytes) -> Marker:
    version, offset, clock = _MARKER.unpack_from(raw)
    if version not in READ_FORMATS and version != MARKER_WITH_PARTS:
        raise StateFormatError(f"marker format {version}, this worker reads {sorted(READ_FORMATS | {MARKER_WITH_PARTS})}")
    at = _MARKER.size
    redo = []
    while at < len(raw):
        (size,) = _LENGTH.unpack_from(raw, at)
        key = raw[at + _LENGTH.size:at + _LENGTH.size + size]
        at += _LENGTH.size + size
        (size,) = _LENGTH.unpack_from(raw, at)
        at += _LENGTH.size
        value = None if size < 0 else raw[at:at + size]
        at += max(size, 0)
        redo.append((key, value))
    return Marker(offset, _from_micros(clock), tuple(redo))


_CASE_HEADER = struct.Struct(">BHqq")
_NONE = -(2**63)


class CaseHeader(NamedTuple):
    """What a worker needs of a stored case without unpickling it: to rebuild a partition's
    timers and clock after a restart or a rebalance."""

    partition: int
    wake_at: datetime | None
    last_time: datetime | None


def _micros(moment: datetime | None) -> int:
    # Written at every step (a case's header, the marker), mostly the same instant objects again.
    return _NONE if moment is None else state_codec.remembered_micros(moment)


def _from_micros(value: int) -> datetime | None:
    return None if value == _NONE else state_codec.from_micros(value)


def encode_case(partition: int, wake_at: datetime | None, case: CaseState) -> bytes:
    return (_CASE_HEADER.pack(STATE_FORMAT, partition, _micros(wake_at), _micros(case.last_time))
            + state_codec.dumps_case(case))


def case_header(raw: bytes) -> CaseHeader:
    with _reading("a case entry's header"):
        version, partition, wake, last = _CASE_HEADER.unpack_from(raw)
        if version not in READ_FORMATS:
            raise StateFormatError(f"case state format {version}, this worker reads {sorted(READ_FORMATS)}")
        return CaseHeader(partition, _from_micros(wake), _from_micros(last))


def decode_case(raw: bytes) -> CaseState:
    case_header(raw)
    state = memoryview(raw)[_CASE_HEADER.size:]
    if raw[0] >= 4:  # JSON since table format 4
        return state_codec.loads_case(state)
    case = state_codec.loads(state)  # pickled before
    if not isinstance(case, CaseState):
        raise CorruptState(f"a case entry that holds a {type(case).__name__}")
    return case


RETIRED_PREFIX = b"\x01retired/"
"""Keys of the case table's retired cases (`CaseBook.retired`); case ids have no control characters."""


def encode_retired(partition: int, case: CaseState) -> bytes:
    """A retired case: a case entry (no wake-up), compressed."""
    return zlib.compress(encode_case(partition, None, case), 6)


def decode_retired(raw: bytes) -> CaseState:
    return decode_case(zlib.decompress(raw))


def encode_entry(record: bytes) -> bytes:
    """Any other table value, the city stage's entries (`state_codec.dumps_referral`, …)."""
    return bytes([STATE_FORMAT]) + record


def decode_entry(raw: bytes, kind: str, before: type) -> Any:
    """A city entry of `kind` (`state_codec.loads_entry`): JSON since table format 5; written
    before, a pickle of `before`."""
    if raw[:1] == bytes([STATE_FORMAT]):
        return state_codec.loads_entry(memoryview(raw)[1:], kind)
    return decode_pickled(raw, before)


def decode_pickled(raw: bytes, before: type) -> Any:
    """A table value a release before table format 5 pickled, which must be a `before`."""
    if not raw or raw[0] not in READ_FORMATS - {STATE_FORMAT}:
        raise StateFormatError(f"state format {raw[:1].hex() or 'empty'} for a pickle, this worker reads "
                               f"{sorted(READ_FORMATS)}")
    value = state_codec.loads(memoryview(raw)[1:])
    if not isinstance(value, before):
        raise CorruptState(f"a stored {before.__name__} that holds a {type(value).__name__}")
    return value
