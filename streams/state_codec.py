"""The codec of the engine's stored state (Kafka table values, the embedded checkpoint, retired
cases): what the state is made of, written so that moving a class does not change the stored
bytes, and read so that nothing outside the state's own types can be reached.

What is written since 2026-12-01 is JSON, versioned, written by orjson: it names no class or
module, and reading it checks every value against its record type first (strict pydantic types:
`read_checked`), then calls nothing but the state's own constructors and the alert and exemption
models' validation; a record that is not what it should be is refused as `CorruptState`, with the
place it is wrong and not its value. Instants in legal time are microseconds (`micros`), any
other instant RFC 3339 text with its offset; alerts and exemptions are their contract JSON, with
their instants written beside it so that they come back in legal time. Each format starts with
its magic (these are the codec's format numbers; a Kafka table value carries its own too,
`wire.STATE_FORMAT`):
- format 3, `CASE_MAGIC`: a case state on its own (a Kafka table's case entry, a retired case;
  `dumps_case`);
- format 4, `ENTRY_MAGIC`: one of the Kafka city stage's entries (a referral's working copy, a
  PW-013 item, a case as its item knows it, a PW-013 record; `dumps_referral` and its siblings);
- format 5, `ENGINE_MAGIC`: an engine's whole state, made of the same records (the embedded
  checkpoint; `dumps_engine`).

What the runtimes wrote before is still read, never written (tests/legacy_state.py writes it for
the tests). Format 2 (`MAGIC`, until 2026-12-01): a pickle stream whose classes of ours are
extension codes derived from their names (pickle's EXT opcodes, `copyreg.add_extension`; the
engine's classes in `alerts` and `models`, the Kafka stages' stored records, the retired-case
store), a case as the call of its layout's reader on one flat tuple (`_case_from_layout`), an
alert as the call of its reader on a stream of its own. Format 1 named classes as persistent ids
(tags, and `zone:KEY` for a time zone) and format 0 (before 2026-11-30) by module path. Reading
them resolves a code or a global in the registry only: a stream that names any other global is
refused with `UnsafeState` before anything is called. What reading them still allows a forged
stream (so the tables and the checkpoint must be writable by the workers and the monitor only:
Kafka ACLs, file permissions): calling a registered class with arguments of its choosing, and
setting attributes on a registered class object (pickle's BUILD on a class), which lasts for the
process.
"""

from __future__ import annotations

import base64
import collections
import copyreg
import dataclasses
import datetime as dt
import decimal
import functools
import importlib
import io
import pickle
import pickletools
import pkgutil
import sys
import threading
import zlib
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal, NamedTuple
from zoneinfo import ZoneInfo

import orjson
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import TzInfo

from permitwatch.alerts import case as c
from permitwatch.alerts import referrals as r
from permitwatch.alerts.city import AlertInput, CityInput, CityState, ExemptionInput, ItemUpdate, ReportInput
from permitwatch.alerts.engine import EngineState, EngineStats, TimerIndex
from permitwatch.alerts.rules.pw013_out_of_order_grant import ItemCase, ItemState
from permitwatch.models.alerts import Alert, Officers
from permitwatch.models.common import LEGAL_TZ, record_bytes
from permitwatch.models.errors import CorruptState
from permitwatch.models.referrals import Exemption

MAGIC = b"PWS\x02"
"""Format 2: the stored state's first bytes."""
_FORMAT_ONE = b"PWS\x01"

_ENGINE_PACKAGES = ("permitwatch.alerts", "permitwatch.models")
_RUNTIME_CLASSES = {"permitwatch.streams.kafka.stages": ("StoredItem", "StoredCase", "CityHeader"),
                    "permitwatch.streams.retired": ("CompactCases",)}
"""The runtimes' own stored records (their modules define other classes, not stored)."""
_STANDARD: tuple[type, ...] = (
    dt.date, dt.datetime, dt.time, dt.timedelta, dt.timezone, decimal.Decimal, TzInfo, ZoneInfo,
    collections.Counter, collections.OrderedDict, collections.defaultdict, collections.deque,
    set, frozenset, list, dict, tuple, str, int, float, bool, bytes,
)
_BEFORE_ONE_PACKAGE = ("alerts.", "models.", "streams.")
"""Module names in format-0 pickles written before the packages moved under `permitwatch`."""


class UnsafeState(CorruptState):
    """Stored state that names something the engine's state is not made of."""


class _Registry(NamedTuple):
    by_tag: dict[str, Any]
    """Our classes and the layouts' readers, by tag."""
    by_path: dict[tuple[str, str], Any]
    """(module, qualified name) → class or layout reader: what pickle asks the reader for."""


@functools.cache
def _registry() -> _Registry:
    """Everything the state may be made of, each of our classes registered under its tag's
    extension code. Built on first use (the modules it reads import this one), under a lock: the
    embedded runtime encodes from several threads."""
    with _building:
        return _build_registry()


_building = threading.Lock()


def _build_registry() -> _Registry:
    by_tag: dict[str, type] = {cls.__name__: cls for cls in _STANDARD}
    for module_name, names in _RUNTIME_CLASSES.items():
        module = importlib.import_module(module_name)
        by_tag.update((name, getattr(module, name)) for name in names)
    modules = []
    for package_name in _ENGINE_PACKAGES:
        package = importlib.import_module(package_name)
        modules.append(package)
        modules += [importlib.import_module(info.name)
                    for info in pkgutil.walk_packages(package.__path__, f"{package_name}.")]
    for module in modules:
        for value in vars(module).values():
            if isinstance(value, type) and value.__module__ == module.__name__:
                other = by_tag.setdefault(value.__name__, value)
                if other is not value:
                    raise RuntimeError(f"two classes of the engine's state are called {value.__name__} "
                                       f"({other.__module__}, {value.__module__}): the state codec names "
                                       "classes by name, so one of them needs another")
    by_tag["CaseLayout"] = _case_from_layout
    by_tag["AlertLayout"] = _alert_from_stored
    _register_codes(by_tag)
    return _Registry(by_tag, {(cls.__module__, cls.__qualname__): cls for cls in by_tag.values()})


_CODES_FROM = 0x1000_0000
_registered: dict[int, tuple[str, str]] = {}


def _code(tag: str) -> int:
    """A tag's extension code: the same in every process and release."""
    return _CODES_FROM + zlib.crc32(tag.encode()) % (0x7FFF_FFFF - _CODES_FROM)


def _register_codes(by_tag: dict[str, type]) -> None:
    """Our classes under their codes, in copyreg's registry, which is the process's: the standard
    library's types keep their module paths (they do not move, and other pickles in the process
    stay as the rest of Python expects). Only what changed is touched, so that a second build
    never leaves a moment where a class has no code."""
    wanted: dict[int, tuple[str, str]] = {}
    for tag, cls in by_tag.items():
        if cls.__module__ in sys.stdlib_module_names:
            continue
        code = _code(tag)
        if code in wanted:
            raise RuntimeError(f"the tags {tag} and {wanted[code][1]} have the same extension code: "
                               "one of the classes needs another name")
        wanted[code] = (cls.__module__, cls.__qualname__)
    stale = {code: key for code, key in _registered.items() if wanted.get(code) != key}
    for code, (module, name) in stale.items():
        copyreg.remove_extension(module, name, code)
        del _registered[code]
    if stale:
        copyreg.clear_extension_cache()
    for code, (module, name) in wanted.items():
        copyreg.add_extension(module, name, code)
        _registered[code] = (module, name)


# ----- the case layout -----
# A case in a format-2 state was written as one flat tuple of pickle's own types, its instants in
# legal time as integers (about twice as fast as pickle's generic path, and half the bytes). Its
# reader is also how a JSON case record (format 3, below) becomes a case.

_CASE_LAYOUT = 1
"""The version of the layout, its first element: a new layout gets a new number, and the reader
keeps reading the old ones."""
_CASE_FIELDS = (
    "case_id", "item_code", "department", "applicant", "submitted", "receipts", "notices", "accepted",
    "promised_day", "rejected", "withdrawn", "closure", "procedure_starts", "procedure_ends", "forwarded",
    "hearing_requested", "hearing_held", "decisions", "licence", "published", "fees", "handler", "reviewer",
    "approver", "seen", "last_time", "last_step", "alerts", "referable", "dues", "expires",
)
"""The fields the layout and the JSON record (`_case_record`) hold: checked against `CaseState`
on import, so that a field added to the case fails loudly instead of being silently dropped."""
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def micros(moment: dt.datetime) -> int:
    """An instant as microseconds since the epoch: how stored state writes instants."""
    return (moment - _EPOCH) // _MICROSECOND


@functools.lru_cache(maxsize=1 << 16)
def from_micros(value: int) -> dt.datetime:
    """The instant `micros` wrote, in legal time. Remembered: a state read back holds the same
    instants many times over (a case's facts share its events' times; a checkpoint's timers are
    its cases' deadlines), and a conversion costs about 2 µs, a lookup a tenth of that."""
    return (_EPOCH + value * _MICROSECOND).astimezone(LEGAL_TZ)


_INSTANTS_KEPT = 100_000
_written_instants: dict[int, tuple[dt.datetime, int]] = {}
"""`micros` of the instants written lately, by object (`_remember`). A case's instants are the
same objects from one of its states to the next (an event adds facts and keeps the others), and
`micros` of an instant in a time zone costs about 1 µs, half of writing a case: each is converted
once. Full, it holds about 22 MB."""


def _remember(kept: dict[int, tuple[Any, Any]], limit: int, obj: Any, make: Callable[[Any], Any]) -> Any:
    """`make(obj)`, made once per object while `kept` (by id, emptied when it reaches `limit`)
    remembers it. The entry holds the object itself, so its id cannot be reused while it lives."""
    known = kept.get(id(obj))
    if known is None or known[0] is not obj:
        if len(kept) >= limit:
            kept.clear()
        known = kept[id(obj)] = (obj, make(obj))
    return known[1]


def remembered_micros(moment: dt.datetime) -> int:
    """`micros` of `moment`, converted once per object (`_written_instants`)."""
    known = _written_instants.get(id(moment))  # `_remember`'s hit, inline: twice for every case written
    if known is not None and known[0] is moment:
        return known[1]
    return _remember(_written_instants, _INSTANTS_KEPT, moment, micros)


def _instant(moment: dt.datetime | None) -> int | dt.datetime | None:
    """An instant in legal time (all an event's are) as `micros`; any other datetime as itself, so
    that it reads back with its own time zone."""
    if moment is None or moment.tzinfo is not LEGAL_TZ:
        return moment
    # `_remember`'s hit, inline: this runs about 15 times for every case written, on the event path.
    known = _written_instants.get(id(moment))
    if known is not None and known[0] is moment:
        return known[1]
    return _remember(_written_instants, _INSTANTS_KEPT, moment, micros)


def _moment(value: int | str | dt.datetime | None) -> dt.datetime | None:
    """An instant as stored: `micros`, or (outside legal time) the datetime itself in a pickle and
    RFC 3339 text with its offset in JSON."""
    if value.__class__ is int:
        return from_micros(value)
    if value.__class__ is str:
        moment = dt.datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError(f"an instant without its offset: {value[:40]!r}")
        return moment
    return value


def _fact(fact: Any) -> tuple | None:
    return None if fact is None else (_instant(fact[0]), fact[1])


def _fact_from(value: tuple | None) -> c.Fact | None:
    return None if value is None else c.Fact(_moment(value[0]), value[1])


def _officer(known: Any) -> tuple | None:
    if known is None:
        return None
    return known[0], _instant(known[1]), known[2], _instant(known[3]), known[4]


def _case_from_layout(layout: tuple) -> c.CaseState:
    if not isinstance(layout, tuple) or not layout or layout[0] != _CASE_LAYOUT:
        raise CorruptState(f"a case state of layout {layout[:1] if isinstance(layout, tuple) else layout!r}; "
                           f"this release reads layout {_CASE_LAYOUT}")
    (_, case_id, item_code, department, applicant, submitted, receipts, notices, accepted, promised_day, rejected,
     withdrawn, closure, procedure_starts, procedure_ends, forwarded, hearing_requested, hearing_held, decisions,
     licence, published, fees, handler, reviewer, approver, seen, last_time, last_step, alerts, referable, dues,
     expires) = layout
    moment, fact = _moment, _fact_from

    def officer(value: tuple | None) -> Any:
        return None if value is None else c.Officer(value[0], moment(value[1]), value[2], moment(value[3]), value[4])

    return c.CaseState(
        case_id, item_code, department, applicant, fact(submitted),
        [c.Receipt(moment(r[0]), *r[1:]) for r in receipts] or (),
        [c.Notice(moment(n[0]), *n[1:]) for n in notices] or (),
        fact(accepted), promised_day, fact(rejected), fact(withdrawn), fact(closure),
        [c.ProcedureStart(moment(p[0]), *p[1:]) for p in procedure_starts] or (),
        [c.ProcedureEnd(moment(p[0]), *p[1:]) for p in procedure_ends] or (),
        fact(forwarded), fact(hearing_requested), fact(hearing_held),
        [c.Decision(moment(d[0]), *d[1:]) for d in decisions] or (),
        fact(licence), fact(published),
        [c.Fee(moment(f[0]), *f[1:]) for f in fees] or (),
        officer(handler), officer(reviewer), officer(approver),
        seen, moment(last_time), last_step, alerts, referable,
        None if dues is None else {rule: moment(due) for rule, due in dues.items()},
        moment(expires),
    )


def _check_case_layout() -> None:
    fields = tuple(f.name for f in dataclasses.fields(c.CaseState))
    if fields != _CASE_FIELDS:
        raise RuntimeError(f"CaseState's fields {fields} are not those its stored layout writes {_CASE_FIELDS}: "
                           "give streams/state_codec.py a new layout version (_CASE_LAYOUT) and record version "
                           "(_CASE_RECORD), and `_CaseRecord` the new field's type")


_check_case_layout()  # on import: `dumps_case` writes cases without building the registry


# ----- a case state as JSON (format 3) -----
# The value written at every event (a Kafka table's case entry, a retired case) is written as JSON
# of the layout's fields: orjson writes it in about two thirds of the time pickle took. Reading it
# cannot name a class or call anything but the case's own constructors: the record is checked
# against its declared shape and types first (`_CaseRecord`), so a forged or damaged one is refused
# as corrupt instead of making a case that fails later (a tick over its partition's cases), and
# its alerts are read by their own model, from the contract's JSON.

CASE_MAGIC = b"PWS\x03"
"""Format 3, a case state on its own: JSON of `_case_record`."""
_CASE_RECORD = 1
"""The version of the record's fields, its first element (as `_CASE_LAYOUT`)."""

def strict_record(record_type: Any) -> TypeAdapter:
    """The reader of a stored record's type: strict, so that no value is coerced into another
    type (`read_checked`)."""
    return TypeAdapter(record_type, config=ConfigDict(strict=True))


Int = Annotated[int, Field(ge=-(2**63), le=2**64 - 1)]
"""An integer in a record: what orjson writes, so that one read can always be written again."""
Micros = Annotated[int, Field(ge=micros(dt.datetime(1, 1, 2, tzinfo=dt.UTC)),
                               le=micros(dt.datetime(9999, 12, 30, tzinfo=dt.UTC)))]
"""`micros` of an instant, in a record: within what a datetime holds in any time zone, so that a
forged one is refused with the record rather than failing `from_micros`."""
_Instant = Micros | str
"""`micros` of an instant in legal time; any other instant as RFC 3339 text with its offset (its
time zone object is not kept: none is used in arithmetic)."""
_FactRecord = tuple[_Instant, str] | None
_OfficerRecord = tuple[str, _Instant, str, _Instant, str] | None
_KeyedAlertRecord = tuple[str, _Instant, _Instant | None, dict[str, Any]]
"""An alert by its key (`_alert_record`): its two instants, then its contract JSON."""
_CASE_RECORD_TYPE = tuple[
    Literal[1], str, str | None, str | None, str | None, _FactRecord,
    list[tuple[_Instant, str, list[str], bool]],
    list[tuple[_Instant, str, list[str]]],
    _FactRecord, str | None, _FactRecord, _FactRecord, _FactRecord,
    list[tuple[_Instant, str, str, str | None, bool, Int | None]],
    list[tuple[_Instant, str, str]],
    _FactRecord, _FactRecord, _FactRecord,
    list[tuple[_Instant, str, str, bool, bool]],
    _FactRecord, _FactRecord,
    list[tuple[_Instant, str, str | None, str, bool]],
    _OfficerRecord, _OfficerRecord, _OfficerRecord,
    list[Int], list[Int], _Instant | None, Int,
    list[_KeyedAlertRecord] | None,
    bool, dict[str, _Instant] | None, _Instant | None,
]
"""What `_case_record` writes, field by field."""
_CaseRecord = strict_record(_CASE_RECORD_TYPE)
_RECORD_FIELDS = ("version", *_CASE_FIELDS[:_CASE_FIELDS.index("seen")], "seen (keys)", "seen (digests)",
                  *_CASE_FIELDS[_CASE_FIELDS.index("seen") + 1:])
"""The record's elements by position, to say where a refused one is wrong."""


def dumps_case(case: c.CaseState) -> bytes:
    """A case state alone, as format 3: how the runtimes store a case (read by `loads`)."""
    return CASE_MAGIC + orjson.dumps(_case_record(case))


def _case_record(case: c.CaseState) -> list:
    # An instant outside legal time stays a datetime, which orjson writes as RFC 3339 text with
    # its offset; every other is an integer (`_instant`).
    # Most of a case's lists are empty (the shared `()`): skipping their comprehensions saves a
    # tenth of the time, on the event path.
    fact, instant = _fact, _instant
    seen = case.seen
    receipts, notices, starts, ends, decisions, fees = (
        case.receipts, case.notices, case.procedure_starts, case.procedure_ends, case.decisions, case.fees)
    return [
        _CASE_RECORD, case.case_id, case.item_code, case.department, case.applicant, fact(case.submitted),
        # sorted: the same case, the same bytes
        [(instant(r[0]), r[1], sorted(r[2]), r[3]) for r in receipts] if receipts else [],
        [(instant(n[0]), n[1], sorted(n[2])) for n in notices] if notices else [],
        fact(case.accepted), case.promised_day, fact(case.rejected), fact(case.withdrawn), fact(case.closure),
        [(instant(p[0]), *p[1:]) for p in starts] if starts else [],
        [(instant(p[0]), p[1], p[2]) for p in ends] if ends else [],
        fact(case.forwarded), fact(case.hearing_requested), fact(case.hearing_held),
        [(instant(d[0]), *d[1:]) for d in decisions] if decisions else [],
        fact(case.licence), fact(case.published),
        [(instant(f[0]), f[1], f[2], str(f[3]), f[4]) for f in fees] if fees else [],
        _officer(case.handler), _officer(case.reviewer), _officer(case.approver),
        list(seen), list(seen.values()), instant(case.last_time), case.last_step,
        None if case.alerts is None else [_alert_record(key, alert) for key, alert in case.alerts.items()],
        case.referable,
        None if case.dues is None else {rule: instant(due) for rule, due in case.dues.items()},
        instant(case.expires),
    ]


def read_checked(record_type: TypeAdapter, data: bytes, what: str, fields: tuple[str, ...] = ()) -> Any:
    """The JSON `data` as `record_type` (strict), or `CorruptState` saying where it is not: at
    which element (named by `fields` when the record is a tuple), and why, without its value."""
    try:
        return record_type.validate_json(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        where = [fields[at] if index == 0 and isinstance(at, int) and at < len(fields) else str(at)
                 for index, at in enumerate(error["loc"])]
        raise CorruptState(f"{what} cannot be read: at {'/'.join(where) or 'the top'}, {error['msg']} "
                           f"({exc.error_count()} error(s))") from None


def _case_from_record(data: bytes) -> c.CaseState:
    """The case a record holds, made by the layout's reader once the values JSON has no type for
    (sets, dates, decimals, the `seen` dict, alerts) are what the layout holds."""
    return _case_from_checked(read_checked(_CaseRecord, data, f"a case record of version {_CASE_RECORD}",
                                           _RECORD_FIELDS))


def _case_from_checked(record: tuple) -> c.CaseState:
    (_, case_id, item_code, department, applicant, submitted, receipts, notices, accepted, promised_day, rejected,
     withdrawn, closure, procedure_starts, procedure_ends, forwarded, hearing_requested, hearing_held, decisions,
     licence, published, fees, handler, reviewer, approver, seen_keys, seen_digests, last_time, last_step, alerts,
     referable, dues, expires) = record
    return _case_from_layout((
        _CASE_LAYOUT, case_id, item_code, department, applicant, submitted,
        [(r[0], r[1], frozenset(r[2]), r[3]) for r in receipts], [(n[0], n[1], frozenset(n[2])) for n in notices],
        accepted, None if promised_day is None else dt.date.fromisoformat(promised_day), rejected, withdrawn, closure,
        procedure_starts, procedure_ends, forwarded, hearing_requested, hearing_held, decisions, licence, published,
        [(f[0], f[1], f[2], decimal.Decimal(f[3]), f[4]) for f in fees], handler, reviewer, approver,
        dict(zip(seen_keys, seen_digests, strict=True)), last_time, last_step,
        None if alerts is None else dict(_alert_from_record(*entry) for entry in alerts), referable, dues, expires,
    ))


_ALERTS_KEPT = 20_000
_alerts_json: dict[int, tuple[Alert, orjson.Fragment]] = {}
"""The contract's JSON of the alerts written lately, by object (`_remember`, up to `_ALERTS_KEPT`):
a case holds its alerts from one state to the next, and a referral's working copy every red alert
of its case (hundreds, for a grant that overtook hundreds of applications), so the same alert
objects are written again and again."""


def _alert_record(key: str, alert: Alert) -> tuple:
    """An alert of a case: its contract JSON (made once per alert object), and its two instants
    as the case's are written. Read from the JSON alone, they would come back in a fixed offset
    rather than legal time, which compares differently in the hour Shanghai's clocks repeated
    (1986-1991) and ten times slower everywhere."""
    written = _remember(_alerts_json, _ALERTS_KEPT, alert, _alert_fragment)
    deadline = alert.deadline
    return key, _instant(alert.detected_at), None if deadline is None else _instant(deadline.instant), written


def _alert_fragment(alert: Alert) -> orjson.Fragment:
    return orjson.Fragment(record_bytes(alert))


def _alert_from_record(key: str, detected_at: _Instant, deadline_instant: _Instant | None,
                       fields: dict[str, Any]) -> tuple[str, Alert]:
    fields["detected_at"] = _moment(detected_at)
    if deadline_instant is not None and isinstance(fields.get("deadline"), dict):
        fields["deadline"]["instant"] = _moment(deadline_instant)
    return key, Alert.model_validate(fields)


# ----- the city's entries as JSON (format 4) -----
# What the Kafka city stage stores besides its header, each entry on its own: a referral's working
# copy, a PW-013 item, a case as its item knows it (with the case's latest report), a PW-013
# record. `ENTRY_MAGIC`, then JSON `[kind, version, ...]`, checked against the kind's record type
# before anything is made of it, as a case record is. A referral must come back exactly as it was
# (what its last version showed is compared with what it shows next: any difference would be a
# version that replay does not make), so tuples come back as tuples, instants in legal time
# (written as `micros`), the exemption and the alerts by their models from the contract's JSON.

ENTRY_MAGIC = b"PWS\x04"
"""Format 4: one of the city's entries."""

_ReportRecord = tuple[str, str | None, str | None, list[tuple[str, str | None, list[str]]],
                      list[tuple[str, _Instant, str]], Int]
_ExemptionRecord = tuple[dict[str, Any], _Instant, _Instant | None]
_ItemCaseRecord = tuple[_FactRecord, _Instant | None, str | None, _FactRecord, str | None,
                        tuple[str | None, str | None, str | None], _FactRecord]
_ReferralRecord = tuple[
    str, str, list[_KeyedAlertRecord], _ReportRecord | None, _ExemptionRecord | None, Int, _Instant | None,
    tuple[str, list[tuple[str, str, str]], list[tuple[str, str | None, list[str]]], list[tuple[str, _Instant, str]],
          _ExemptionRecord | None, list[tuple[str, str, str]], str | None, str | None] | None,
    tuple[_Instant, list[tuple[str, str]]] | None, list[tuple[str, str, str | None]],
]
"""referral id, case id, alerts, report, exemption, version, as of, shown, standing, findings."""
_Pairs = list[tuple[str, str]]
_Left = list[tuple[str, _Instant]]


_ENTRY_RECORDS: dict[str, tuple[TypeAdapter, tuple[str, ...]]] = {
    "referral": (strict_record(tuple[Literal["referral"], Literal[1], _ReferralRecord]), ("kind", "version", "referral")),
    "item": (strict_record(tuple[Literal["item"], Literal[1], _Pairs, _Left]), ("kind", "version", "pending", "left")),
    "item_case": (strict_record(tuple[Literal["item_case"], Literal[1], _ItemCaseRecord, _ReportRecord | None]),
                  ("kind", "version", "standing", "report")),
    "alert": (strict_record(tuple[Literal["alert"], Literal[1], _KeyedAlertRecord]), ("kind", "version", "alert")),
}
"""Each kind's record type (strict) and its elements' names, to say where a refused one is wrong."""


def dumps_referral(working: r._Working) -> bytes:
    """A referral's working copy (the city stage's `r` entries)."""
    return _entry(["referral", 1, _referral(working)])


def dumps_item(pending: set[tuple[str, str]], left: dict[str, dt.datetime]) -> bytes:
    """A PW-013 item but its cases and its records, which are entries of their own."""
    return _entry(["item", 1, sorted(pending), _left(left)])


def dumps_item_case(standing: ItemCase, report: r.CaseReport | None) -> bytes:
    """A case as its PW-013 item knows it, and its latest report (for the referral of a red card)."""
    return _entry(["item_case", 1, _item_case(standing), _report(report)])


def dumps_alert(alert: Alert) -> bytes:
    """A PW-013 record."""
    return _entry(["alert", 1, _alert_record("", alert)])


def _entry(record: list) -> bytes:
    return ENTRY_MAGIC + orjson.dumps(record)


def _referral(working: r._Working) -> tuple:
    shown, standing = working.shown, working.standing
    return (
        working.referral_id, working.case_id, [_alert_record(key, alert) for key, alert in working.alerts.items()],
        _report(working.report), _exemption(working.exemption), working.version, _instant(working.as_of),
        None if shown is None else (
            shown.status, shown.alerts, shown.officers,
            [(rule, _instant(at), event) for rule, at, event in shown.mitigations], _exemption(shown.exemption),
            shown.aggravations, shown.department, shown.item_code),
        None if standing is None else (_instant(standing[0]), standing[1]),
        [(*subject, cited) for subject, cited in working.findings.items()],
    )


def _left(left: dict[str, dt.datetime]) -> list:
    return [(case_id, _instant(at)) for case_id, at in left.items()]


def _item_case(standing: ItemCase) -> tuple:
    officers = standing.officers
    return (_fact(standing.accepted), _instant(standing.closed_at), standing.outcome, _fact(standing.grant),
            standing.department, (officers.handler, officers.reviewer, officers.approver), _fact(standing.decided))


def _report(report: r.CaseReport | None) -> tuple | None:
    if report is None:
        return None
    return (report.case_id, report.item_code, report.department, report.officers,
            [(rule, _instant(at), event) for rule, at, event in report.remedies], report.revision)


def _exemption(exemption: Exemption | None) -> tuple | None:
    # Its JSON holds its instants too, but would give them back in a fixed offset (`_alert_record`).
    if exemption is None:
        return None
    return (orjson.Fragment(record_bytes(exemption)), _instant(exemption.recorded_at),
            _instant(exemption.decided_at))


def _entry_from_record(data: bytes, expected: str | None = None) -> Any:
    # The kind is the record's first element, as `_entry` writes it, to pick the record type.
    kind = data[2:data.find(b'"', 2)].decode("ascii", "replace") if data.startswith(b'["') else ""
    if kind not in _ENTRY_RECORDS:
        raise CorruptState(f"a city entry of kind {kind[:40]!r}; this release reads {', '.join(_ENTRY_RECORDS)}")
    if expected is not None and kind != expected:
        raise CorruptState(f"a city entry of kind {kind!r} where a {expected!r} belongs")
    record_type, fields = _ENTRY_RECORDS[kind]
    _, _, *record = read_checked(record_type, data, f"a city entry ({kind}) of version 1", fields)
    if kind == "referral":
        return _referral_from(record[0])
    if kind == "item":
        pending, left = record
        return set(pending), _left_from(left)
    if kind == "item_case":
        standing, report = record
        return _item_case_from(standing), _report_from(report)
    return _alert_from_record(*record[0])[1]


def _referral_from(record: tuple) -> r._Working:
    moment = _moment
    referral_id, case_id, alerts, report, exemption, version, as_of, shown, standing, findings = record
    return r._Working(
        referral_id, case_id, dict(_alert_from_record(*entry) for entry in alerts), _report_from(report),
        _exemption_from(exemption), version, moment(as_of), None if shown is None else r._Shown(
            shown[0], tuple(map(tuple, shown[1])), _officer_rows(shown[2]),
            tuple((rule, moment(at), event) for rule, at, event in shown[3]), _exemption_from(shown[4]),
            tuple(map(tuple, shown[5])), shown[6], shown[7]),
        None if standing is None else (moment(standing[0]), tuple(map(tuple, standing[1]))),
        {(subject_kind, subject): cited for subject_kind, subject, cited in findings},
    )


def _left_from(left: list) -> dict[str, dt.datetime]:
    return {case_id: _moment(at) for case_id, at in left}


def _item_case_from(record: tuple) -> ItemCase:
    accepted, closed_at, outcome, grant, department, (handler, reviewer, approver), decided = record
    fact = _fact_from
    return ItemCase(fact(accepted), _moment(closed_at), outcome, fact(grant), department,
                    Officers(handler=handler, reviewer=reviewer, approver=approver), fact(decided))


def _officer_rows(rows: list) -> tuple:
    return tuple((role, officer, tuple(ids)) for role, officer, ids in rows)


def _report_from(record: tuple | None) -> r.CaseReport | None:
    if record is None:
        return None
    case_id, item_code, department, officers, remedies, revision = record
    return r.CaseReport(case_id, item_code, department, _officer_rows(officers),
                        tuple((rule, _moment(at), event) for rule, at, event in remedies), revision)


def _exemption_from(record: tuple | None) -> Exemption | None:
    if record is None:
        return None
    fields, recorded_at, decided_at = record
    return Exemption.model_validate({**fields, "recorded_at": _moment(recorded_at),
                                     "decided_at": _moment(decided_at)})


# ----- the engine's whole state as JSON (format 5): the embedded checkpoint -----
# Every open case as its case record, the city's items, reports, referrals and waiting inputs as
# the city's entries are written, and the engine's own bookkeeping, in one record checked against
# its type before anything is made of it. What the engine iterates in order (cases, an item's
# cases and records, a city's referrals) keeps its order: the restored engine must carry on
# exactly as the original would, output for output.

ENGINE_MAGIC = b"PWS\x05"
"""Format 5: an engine's whole state (`dumps_engine`)."""

_STATS_COUNTS = ("events", "duplicates", "late_events", "unknown_items", "cases_opened", "cases_retired",
                 "cases_restored")
"""`EngineStats`' counts; its two counters follow them in the record."""
_InputRecord = (
    tuple[Literal["item_update"], str, str, _ItemCaseRecord | None, str, _Instant, _ReportRecord | None]
    | tuple[Literal["alerts"], list[_KeyedAlertRecord], _ReportRecord | None, _Instant]
    | tuple[Literal["report"], _ReportRecord, _Instant]
    | tuple[Literal["exemption"], str, _ExemptionRecord, _Instant, str, str]
)
"""A city input waiting for the city's clock: what it is, then its fields (`_city_input`)."""
_EngineRecord = strict_record(tuple[
    Literal["engine"], Literal[1],
    list[_CASE_RECORD_TYPE], list[tuple[str, _Instant]], _Instant | None,
    tuple[Int, Int, Int, Int, Int, Int, Int, list[tuple[str, str, Int]], list[tuple[str, Int]]],
    list[tuple[str, list[tuple[str, _ItemCaseRecord]], list[tuple[str, str, _KeyedAlertRecord]], _Pairs, _Left]],
    list[tuple[str, list[tuple[str, _ReportRecord]]]], list[_ReferralRecord], _Instant | None,
    list[tuple[_Instant, str, Int, _InputRecord]], Int,
    tuple[list[Int], list[Int]] | None, list[tuple[str, str]],
])
_ENGINE_FIELDS = ("kind", "version", "cases", "timers", "now", "stats", "items", "reports", "referrals", "city clock",
                  "city inputs", "arrivals", "ids", "retired")


def dumps_engine(state: EngineState) -> bytes:
    """An engine's whole state (`Engine.state`), as the embedded monitor's checkpoint holds it."""
    city, stats, ids = state.city, state.stats, state.ids
    return ENGINE_MAGIC + orjson.dumps([
        "engine", 1,
        [_case_record(case) for case in state.cases.values()],
        [(case_id, _instant(at)) for case_id, at in state.timers.scheduled_all()],
        _instant(state.now),
        (*(getattr(stats, name) for name in _STATS_COUNTS),
         [(rule, signal, count) for (rule, signal), count in stats.alerts.items()], list(stats.retractions.items())),
        [(item.item_code, [(case_id, _item_case(standing)) for case_id, standing in item.cases.items()],
          [(*pair, _alert_record("", alert)) for pair, alert in item.alerts.items()], sorted(item.pending),
          _left(item.left)) for item in city.items.values()],
        [(code, [(case_id, _report(report)) for case_id, report in reports.items()])
         for code, reports in city.reports.items()],
        [_referral(working) for working in city.referrals],
        _instant(city.clock),
        [(_instant(at), case_id, arrival, _city_input(given)) for at, case_id, arrival, given in city.pending],
        city.arrivals,
        None if ids is None else (list(ids), list(ids.values())),
        [(case_id, base64.b64encode(packed).decode("ascii")) for case_id, packed in _packed(state.retired)],
    ])


def _city_input(given: CityInput) -> tuple:
    if isinstance(given, ItemUpdate):
        return ("item_update", given.item_code, given.case_id,
                None if given.standing is None else _item_case(given.standing), given.cause[0],
                _instant(given.cause[1]), _report(given.report))
    if isinstance(given, AlertInput):
        return "alerts", [_alert_record("", alert) for alert in given.found], _report(given.report), _instant(given.at)
    if isinstance(given, ReportInput):
        return "report", _report(given.report), _instant(given.at)
    return ("exemption", given.case_id, _exemption(given.exemption), _instant(given.at), given.origin,
            base64.b64encode(given.raw).decode("ascii"))


def _packed(retired: Any) -> Iterator[tuple[str, bytes]]:
    """Retired cases as a compact store holds them; a plain mapping's (a test's engine) packed now."""
    from permitwatch.streams.retired import CompactCases  # it stores its cases with this module

    if isinstance(retired, CompactCases):
        return retired.packed()
    return ((case_id, CompactCases.pack(case)) for case_id, case in retired.items())


def _engine_from_record(data: bytes) -> EngineState:
    from permitwatch.streams.retired import CompactCases

    (_, _, cases, timers, now, stats, items, reports, referrals, clock, pending, arrivals, ids,
     retired) = read_checked(_EngineRecord, data, "an engine state of version 1", _ENGINE_FIELDS)
    moment = _moment
    index = TimerIndex()
    for case_id, at in timers:
        index.schedule(case_id, moment(at))
    *counts, alerts, retractions = stats
    return EngineState(
        {case.case_id: case for case in map(_case_from_checked, cases)}, index, moment(now),
        EngineStats(*counts, collections.Counter({(rule, signal): n for rule, signal, n in alerts}),
                    collections.Counter(dict(retractions))),
        CityState(
            {code: ItemState(code, {case_id: _item_case_from(standing) for case_id, standing in cases},
                             {(first, second): _alert_from_record(*alert)[1] for first, second, alert in alerts},
                             set(pending), _left_from(left))
             for code, cases, alerts, pending, left in items},
            {code: {case_id: _report_from(report) for case_id, report in by_case} for code, by_case in reports},
            [_referral_from(working) for working in referrals], moment(clock),
            [(moment(at), case_id, arrival, _city_input_from(given)) for at, case_id, arrival, given in pending],
            arrivals),
        None if ids is None else dict(zip(*ids, strict=True)),
        CompactCases.of({case_id: base64.b64decode(packed, validate=True) for case_id, packed in retired}),
    )


def _city_input_from(record: tuple) -> CityInput:
    kind, *fields = record
    if kind == "item_update":
        item_code, case_id, standing, event_id, at, report = fields
        return ItemUpdate(item_code, case_id, None if standing is None else _item_case_from(standing),
                          (event_id, _moment(at)), _report_from(report))
    if kind == "alerts":
        alerts, report, at = fields
        return AlertInput(tuple(_alert_from_record(*alert)[1] for alert in alerts), _report_from(report), _moment(at))
    if kind == "report":
        report, at = fields
        return ReportInput(_report_from(report), _moment(at))
    case_id, exemption, at, origin, raw = fields
    return ExemptionInput(case_id, _exemption_from(exemption), _moment(at), origin, base64.b64decode(raw, validate=True))


_WRITTEN_FIELDS: dict[type, tuple[str, ...]] = {
    c.Fact: ("time", "event_id"),
    c.Officer: ("officer", "time", "event_id", "first_time", "first_event_id"),
    c.Receipt: ("time", "event_id", "materials", "first"),
    c.Notice: ("time", "event_id", "materials"),
    c.ProcedureStart: ("time", "event_id", "kind", "approved_by", "notified", "working_days"),
    c.ProcedureEnd: ("time", "event_id", "kind"),
    c.Decision: ("time", "event_id", "outcome", "reasons_given", "remedies_notified"),
    c.Fee: ("time", "event_id", "fee_code", "amount", "deposit"),
    EngineState: ("cases", "timers", "now", "stats", "city", "ids", "retired"),
    EngineStats: (*_STATS_COUNTS, "alerts", "retractions"),
    CityState: ("items", "reports", "referrals", "clock", "pending", "arrivals"),
    ItemState: ("item_code", "cases", "alerts", "pending", "left"),
    ItemCase: ("accepted", "closed_at", "outcome", "grant", "department", "officers", "decided"),
    Officers: ("handler", "reviewer", "approver"),
    r.CaseReport: ("case_id", "item_code", "department", "officers", "remedies", "revision"),
    r._Working: ("referral_id", "case_id", "alerts", "report", "exemption", "version", "as_of", "shown", "standing",
                 "findings"),
    r._Shown: ("status", "alerts", "officers", "mitigations", "exemption", "aggravations", "department",
               "item_code"),
    ItemUpdate: ("item_code", "case_id", "standing", "cause", "report"),
    AlertInput: ("alerts", "report", "at"),
    ReportInput: ("report", "at"),
    ExemptionInput: ("case_id", "exemption", "at", "origin", "raw"),
}
"""The fields the case record, the city's entries and the engine record write, class by class (the
case's own are `_CASE_FIELDS`)."""


def _check_written_fields() -> None:
    for cls, written in _WRITTEN_FIELDS.items():
        fields = (tuple(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls)
                  else tuple(getattr(cls, "model_fields", None) or cls._fields))
        if fields != written:
            raise RuntimeError(f"{cls.__name__}'s fields {fields} are not those its stored record writes {written}: "
                               "write and read the new field in streams/state_codec.py, with a new record version")


_check_written_fields()  # on import, as `_check_case_layout`


# ----- format 2's alerts -----
# A format-2 state holds each alert as the call of this reader on a stream of its own (made once
# per alert object and copied into every state that held it).

def _alert_from_stored(stream: bytes) -> Alert:
    alert = loads(stream)
    if not isinstance(alert, Alert):
        raise CorruptState(f"an alert's stream holds a {type(alert).__name__}")
    return alert


class _TagReader(pickle.Unpickler):
    """Format 2: extension codes, each resolved here the first time a process reads it."""

    refusal = "stored state names"

    def find_class(self, module: str, name: str) -> Any:
        found = _registry().by_path.get((module, name))
        if found is None:
            raise UnsafeState(f"{self.refusal} {module}.{name}, which is not part of the engine's state")
        return found


class _FormatOneReader(pickle.Unpickler):
    """Format 1: classes as persistent ids, by tag."""

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, str):
            if pid.startswith("zone:"):
                return ZoneInfo(pid[5:])
            found = _registry().by_tag.get(pid)
            if found is not None:
                return found
        raise UnsafeState(f"stored state names {pid!r}, which is not part of the engine's state")

    def find_class(self, module: str, name: str) -> Any:
        raise UnsafeState(f"stored state names {module}.{name}, which is not part of the engine's state")


class _FormatZeroReader(_TagReader):
    """Format 0: module paths, each checked against the registry."""

    refusal = "state pickle names"

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith(_BEFORE_ONE_PACKAGE):
            module = f"permitwatch.{module}"
        if module == "builtins" and name == "getattr":
            return _zoneinfo_getattr
        return super().find_class(module, name)


def _zoneinfo_getattr(owner: object, name: str) -> Any:
    # A format-0 ZoneInfo is getattr(ZoneInfo, "_unpickle")(key, from_cache); no other use of
    # getattr is let through, since it reaches any attribute of anything.
    if owner is ZoneInfo and name == "_unpickle":
        return ZoneInfo._unpickle
    raise UnsafeState(f"state pickle asks for attribute {name!r} of {owner!r}")


def loads(data: bytes | memoryview) -> Any:
    """Read stored state of any format this release reads: what its magic says (formats 5, 4, 3)
    or, written before 2026-12-01, a pickle (formats 2, 1, 0). Anything else, or anything that
    cannot be read, is refused with `CorruptState` (`UnsafeState` for a pickle that names anything
    but the state's own types)."""
    view = memoryview(data)
    reader = _JSON_READERS.get(bytes(view[:len(MAGIC)]))
    if reader is not None:
        return _read_json(reader, view)
    try:
        return _read_pickle(view)
    except CorruptState:
        raise
    except Exception as exc:  # a damaged pickle: pickle's own errors say where
        raise CorruptState(f"stored state that cannot be read: {type(exc).__name__}: {str(exc)[:200]}") from None


def loads_case(data: bytes | memoryview) -> c.CaseState:
    """A case state that must be format 3 (a Kafka case entry since table format 4)."""
    return _read_json(_case_from_record, _expect(data, CASE_MAGIC, "a case state"))


def loads_entry(data: bytes | memoryview, kind: str) -> Any:
    """One of the city's entries (format 4), which must be of `kind` (its table key says which)."""
    return _read_json(lambda record: _entry_from_record(record, kind), _expect(data, ENTRY_MAGIC, f"a {kind} entry"))


def _expect(data: bytes | memoryview, magic: bytes, what: str) -> memoryview:
    view = memoryview(data)
    if view[:len(magic)] != magic:
        raise CorruptState(f"{what} that is not one: it starts {bytes(view[:len(magic)])!r}")
    return view


def _read_json(reader: Callable[[bytes], Any], view: memoryview) -> Any:
    try:
        return reader(bytes(view[len(MAGIC):]))
    except CorruptState:
        raise
    except Exception as exc:  # its values passed their types, but nothing can be made of them
        raise CorruptState(f"a stored record that cannot be read: {type(exc).__name__}: {str(exc)[:200]}") from None


_SIZED_OPCODES = frozenset({"PUT", "GET", "LONG_BINPUT", "LONG_BINGET", "FRAME"})
"""Pickle opcodes whose argument sizes what the reader allocates (its memo, a frame)."""


def _check_pickle(view: memoryview) -> None:
    """Refuse a pickle that would make its reader allocate far beyond its own size: pickle's C
    reader sizes its memo by the largest index it is told to use (a 23-byte forgery took 4 GB).
    Only data written before 2026-12-01 is read so, once; walking its opcodes costs little then."""
    limit = len(view)
    for opcode, argument, _ in pickletools.genops(io.BytesIO(view[len(MAGIC):] if view[:3] == MAGIC[:3] else view)):
        if opcode.name in _SIZED_OPCODES and int(argument) > limit:
            raise CorruptState(f"stored state whose {opcode.name} asks for {argument}, more than its {limit} bytes")


_JSON_READERS: dict[bytes, Callable[[bytes], Any]] = {
    CASE_MAGIC: _case_from_record, ENTRY_MAGIC: _entry_from_record, ENGINE_MAGIC: _engine_from_record}


def _read_pickle(view: memoryview) -> Any:
    _check_pickle(view)
    head = view[:len(MAGIC)]
    if head == MAGIC:
        _registry()
        try:
            return _TagReader(io.BytesIO(view[len(MAGIC):])).load()
        except ValueError as exc:
            if "extension code" in str(exc):  # pickle's only word for a code nobody registered
                raise UnsafeState(f"stored state names {exc}, which is not part of the engine's state") from None
            raise
    if head == _FORMAT_ONE:
        return _FormatOneReader(io.BytesIO(view[len(MAGIC):])).load()
    if view[:1] != b"\x80":  # format 0 was written with pickle's protocol 5, which starts so
        raise CorruptState(f"stored state in no format this release reads: it starts {bytes(head)!r}")
    return _FormatZeroReader(io.BytesIO(view)).load()
