"""The engine's two stages as Kafka consumers: thin adapters from records to the core and back.

The case stage consumes the events topic (keyed by case id, any number of partitions); what its
outcomes say for the city stage (`CaseOutcome.city_inputs`, the one routing every runtime uses)
goes to the city topic, one partition, with the partition's clock. The city stage applies those
inputs in event-time order behind the oldest of the partitions' clocks (`alerts.city`).

Each stage turns one consumed record into a `Step`: the records to produce and the table writes
to make. The worker takes what its fetches returned (a batch), turns each record into its step, the
writes held in an `Overlay` that the next steps read through; produces the records of every step
without waiting for each acknowledgement; waits until the broker has them all; and only then
makes the writes (`Stage.commit`). Per partition, the first of them is the partition's marker:
the offset the state now includes, and the batch's writes again (`redo`), each key once with its
last value (a batch too large for one marker is written in runs, `durable_writes`). A table's
writes go to the changelog partition of the record they belong to, in order, so after a kill -9
a changelog holds a prefix of the writes:

- a record at or before the marker was applied, and its outputs were produced before its writes:
  it is skipped when consumed again. The marker's batch itself may have been cut short after the
  marker; its writes are made again from the redo before the partition's state is read. Without
  that, a step's writes that belong together (an item's header and its case entries, a
  referral and the others whose finding it changed) could survive in part, and the state would contradict
  itself in a way no replay repairs (found by the crash simulation in the tests);
- a record after the marker is applied again, and produces the same outputs again (same alert
  ids, same referral versions). Every output carries its source (`SOURCE_HEADER`); a stage
  reading another's outputs skips what is not after the last it applied from that source, and
  so should any consumer of the alert and referral topics.

State ahead of outputs would lose them (the repeated record would produce nothing); state behind
them only repeats them.

Tables hold bytes (see `wire`); a stage reads them directly and keeps what it wrote in the current
step, so the tables can be faust tables or, in tests, dicts.
"""

from __future__ import annotations

import heapq
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol

import orjson

from permitwatch.alerts.case import CaseState
from permitwatch.alerts.city import CityBook, CityInput, CityState, ExemptionInput, Refusal, Watermark, promised
from permitwatch.alerts.engine import (
    CATALOG_CHANGED,
    CaseBook,
    CaseOutcome,
    ConflictingDuplicate,
    Emitted,
    TimerIndex,
    calendar_changed,
    exemption_of,
)
from permitwatch.alerts.referrals import CaseReport, _Working
from permitwatch.alerts.rules.pw013_out_of_order_grant import ItemCase, ItemState
from permitwatch.models.alerts import Alert, Message
from permitwatch.models.common import record_bytes
from permitwatch.models.deadletter import DeadLetter, KafkaSource
from permitwatch.models.errors import CorruptState
from permitwatch.models.events import CloudEvent, ExemptionRecorded, InvalidEvent, parse_event_with_digest
from permitwatch.models.referrals import Referral
from permitwatch.models.settings import RuleSettings
from permitwatch.streams import state_codec
from permitwatch.streams.clocks import Clock, too_far_ahead
from permitwatch.streams.kafka.reference import ReferenceData
from permitwatch.streams.kafka.topology import Topology
from permitwatch.streams.kafka.wire import (
    MARKER_PREFIX,
    REDO_PART_PREFIX,
    RETIRED_PREFIX,
    CityWork,
    Continue,
    Marker,
    Output,
    PartitionClock,
    Record,
    ReferenceChanged,
    Tick,
    case_header,
    control_output,
    decode_case,
    decode_city_input,
    decode_entry,
    decode_marker,
    decode_pickled,
    decode_queued,
    decode_retired,
    encode_case,
    encode_city_input,
    encode_entry,
    encode_marker,
    encode_queued,
    encode_retired,
    is_control,
    is_redo_part,
    marker_key,
    read_control,
    redo_part_key,
    redo_parts_prefix,
)
from permitwatch.streams.metrics import Metrics
from permitwatch.streams.state_codec import Int, Micros, from_micros, read_checked, remembered_micros, strict_record

log = logging.getLogger("permitwatch.kafka")


class StateTable(Protocol):
    """What a stage needs of a table: a faust `Table` of bytes, or a dict."""

    def get(self, key: bytes, default: Any = None) -> Any: ...

    def items(self) -> Iterable[tuple[bytes, bytes]]: ...


class Write(NamedTuple):
    table: Any
    key: bytes
    value: bytes | None
    """None: delete the key."""


@dataclass
class Step:
    outputs: list[Output] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    partition: int = 0
    marker: Marker | None = None
    """What the partition's state includes after the step; None when the record was skipped (its
    `writes` are then at most the completion of an earlier cut-short batch)."""


REDO_LIMIT = 256 * 1024
"""Bytes of a marker with its writes for redo, in the case stage (whose changelog, faust's, has
Kafka's default 1 MB record). A larger batch of one partition is written in runs that fit, and a
step too large on its own writes its redo in parts before its marker (`_run_writes`). The city
stage's changelog takes `Topology.max_record_bytes`, and so does its redo (`CityStage.redo_limit`)."""


def apply_writes(writes: Iterable[Write]) -> None:
    for table, key, value in writes:
        if value is not None:
            table[key] = value
        elif key in table:
            del table[key]


class Overlay:
    """A stage's table as the steps of a batch see it: the batch's writes held in front of the
    table until the broker has the batch's records (`Stage.commit` then writes them through)."""

    def __init__(self, base: StateTable):
        self.base = base
        self.pending: dict[bytes, bytes | None] = {}

    def get(self, key: bytes, default: Any = None) -> Any:
        if key in self.pending:
            value = self.pending[key]
            return default if value is None else value
        return self.base.get(key, default)

    def __contains__(self, key: bytes) -> bool:
        return self.get(key) is not None

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.pending[key] = value

    def __delitem__(self, key: bytes) -> None:
        self.pending[key] = None

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """The table's entries with the batch's writes over them: the table's keys in its order,
        then the batch's new ones. (A dict given the same writes may order a key deleted and set
        again differently; RocksDB orders by key anyway: nothing may depend on the order.)"""
        pending = self.pending
        for key, raw in self.base.items():
            if key not in pending:
                yield key, raw
            elif pending[key] is not None:
                yield key, pending[key]
        for key, value in pending.items():
            if value is not None and key not in self.base:
                yield key, value


Put = Callable[[int, bytes, bytes | None], None]
"""Writes (partition, key, value; None deletes) to a stage's table, on that partition's changelog."""


def durable_writes(steps: list[Step], limit: int = REDO_LIMIT, redo_parts: dict[int, tuple[bytes, ...]] | None = None,
                   ) -> Iterator[tuple[int, bytes, bytes | None]]:
    """The writes of a batch's steps in the order that makes any prefix of them harmless: per
    partition, in runs of consecutive steps whose writes fit one marker of `limit` bytes (`_runs`),
    the marker of the run's last step carrying every key the run wrote (once, its last value) as
    redo, then those writes; a step too large for that alone, its redo first in parts its marker
    names (`_run_writes`). `redo_parts`: per partition, the redo parts to delete after its next
    marker, updated to those the markers written name (without it, none are deleted)."""
    redo_parts = {} if redo_parts is None else redo_parts
    by_partition: dict[int, list[Step]] = {}
    for step in steps:
        by_partition.setdefault(step.partition, []).append(step)
    for partition, group in by_partition.items():
        for run in _runs(group, limit):
            yield from _run_writes(partition, run, limit, redo_parts)


def _runs(group: list[Step], limit: int) -> Iterator[list[Step]]:
    """The steps of one partition in runs whose redo fits `limit` (counting a key written
    twice twice, so that a run of several steps always fits)."""
    return _fitting(group, lambda step: sum(_redo_bytes(write.key, write.value) for write in step.writes), limit)


def _fitting(items: list, size_of: Callable[[Any], int], limit: int) -> Iterator[list]:
    """`items` in consecutive groups each of which fits one marker of `limit` bytes with what
    `size_of` counts for its items; an item too large alone is a group alone."""
    group: list = []
    size = _MARKER_BYTES
    for item in items:
        item_size = size_of(item)
        if group and size + item_size > limit:
            yield group
            group, size = [], _MARKER_BYTES
        group.append(item)
        size += item_size
    if group:
        yield group


def _redo_bytes(key: bytes, value: bytes | None) -> int:
    return _REDO_ENTRY + len(key) + len(value or b"")


_MARKER_BYTES = len(encode_marker(Marker(0)))
_REDO_ENTRY = len(encode_marker(Marker(0, redo=((b"", b""),)))) - _MARKER_BYTES
"""Bytes of a redo entry besides its key and value."""


def _run_writes(partition: int, run: list[Step], limit: int, redo_parts: dict[int, tuple[bytes, ...]],
                ) -> Iterator[tuple[int, bytes, bytes | None]]:
    latest: dict[bytes, bytes | None] = {}
    for step in run:
        for write in step.writes:
            latest.pop(write.key, None)  # a key goes where it was last written
            latest[write.key] = write.value
    markers = [step.marker for step in run if step.marker is not None]
    if not markers:
        yield from ((partition, key, value) for key, value in latest.items())
        return
    for key in redo_parts.get(partition, ()):  # the last marker's parts: needed until this marker is written
        latest[key] = None
    marker = markers[-1]._replace(redo=tuple(latest.items()))
    first = encode_marker(marker)
    parts: list[tuple[bytes, bytes]] = []
    if len(first) > limit:
        if len(run) > 1:  # `_runs` did not count the deletions of the last marker's parts
            for step in run:
                yield from _run_writes(partition, [step], limit, redo_parts)
            return
        # One step, too large on its own (a tick firing thousands of deadlines, a grant that
        # overtook thousands of applications): its redo goes first, in parts that each fit a
        # record, and its marker names them. A kill before the marker leaves the last marker
        # and its own parts as they were. Parts of this same step, written before a kill cut it
        # short, are overwritten, and those beyond its parts now deleted with the others.
        own = redo_parts_prefix(partition, marker.offset)
        again = [key for key in latest if key.startswith(own)]
        for key in again:
            del latest[key]
        parts = list(_redo_parts(partition, marker._replace(redo=tuple(latest.items())), limit))
        names = [key for key, _ in parts]
        beyond = [(key, None) for key in again if key not in names]
        latest.update(beyond)
        first = encode_marker(marker._replace(redo=(*((key, b"") for key in names), *beyond)))
        yield from ((partition, key, value) for key, value in parts)
    yield partition, marker_key(partition), first
    yield from ((partition, key, value) for key, value in latest.items())
    redo_parts[partition] = tuple(key for key, _ in parts)


def _redo_parts(partition: int, marker: Marker, limit: int) -> Iterator[tuple[bytes, bytes]]:
    """`marker`'s redo in parts of at most `limit` bytes, each a marker of its own redo (a write
    larger alone is a part alone): (key, value) of each."""
    chunks = _fitting(list(marker.redo), lambda entry: _redo_bytes(*entry), limit)
    for index, chunk in enumerate(chunks):
        yield redo_part_key(partition, marker.offset, index), encode_marker(Marker(marker.offset, redo=tuple(chunk)))


def stored_items(table: StateTable, redo_parts: list[bytes]) -> Iterator[tuple[bytes, bytes]]:
    """The table's entries, without the stages' markers; the keys of the redo parts among those
    are added to `redo_parts`."""
    for key, raw in table.items():
        if not key.startswith(MARKER_PREFIX):
            yield key, raw
        elif key.startswith(REDO_PART_PREFIX):
            redo_parts.append(key)


def alert_value(alert: Alert) -> bytes:
    """The same bytes as a line of `permitwatch replay --alerts-out`, without the newline."""
    return record_bytes(alert)


def referral_value(referral: Referral) -> bytes:
    return record_bytes(referral)


def alert_output(topology: Topology, alert: Alert) -> Output:
    """Keyed by alert id: the compacted topic keeps the latest record of each alert."""
    return Output(topology.alerts, alert.alert_id.encode(), alert_value(alert))


def referral_output(topology: Topology, referral: Referral) -> Output:
    return Output(topology.referrals, referral.referral_id.encode(), referral_value(referral))


RECORD_OVERHEAD = 1024
"""Bytes a record takes besides its key and value, at most (its batch header, our headers)."""


def _fits(topology: Topology, key: bytes, value: bytes) -> bool:
    """Whether a record fits `Topology.max_record_bytes`, what the topics and producers take."""
    return len(key) + len(value) + RECORD_OVERHEAD <= topology.max_record_bytes


def dead_letter(topology: Topology, origin: str, category: str, reason: str, raw: bytes,
                record: Record | None = None) -> Output:
    """The dead letter of `raw`, with its original bytes while the letter fits a record
    (`Topology.max_record_bytes`): a letter the broker refused would stop the worker on every
    restart. Past that, the letter says where the original is."""
    source = KafkaSource(topic=record.topic, partition=record.partition, offset=record.offset) if record else None
    key = origin.encode()
    value = record_bytes(DeadLetter.of(origin, category, reason, raw, source))
    if not _fits(topology, key, value):
        where = (f"it is at {source.topic} partition {source.partition} offset {source.offset}" if source else
                 "the sender has it")
        value = record_bytes(DeadLetter(origin=origin, source=source, category=category, reason=(
            f"{reason} (its {len(raw):,} bytes are not copied here: with them this dead letter would pass "
            f"PERMITWATCH_MAX_RECORD_BYTES={topology.max_record_bytes:,}; {where})")))
    return Output(topology.dead_letter, key, value)


def event_output(topology: Topology, event: CloudEvent, raw: bytes) -> Output:
    """An event for the events topic, keyed by its case; `InvalidEvent` (too_large) when the topic
    would refuse its record, which would fail the records sent with it on every retry."""
    key = event.subject.encode()
    if not _fits(topology, key, raw):
        raise InvalidEvent(f"the event is {len(raw):,} bytes: over the {topology.max_record_bytes:,} a record of "
                           "the events topic may take (PERMITWATCH_MAX_RECORD_BYTES)", "too_large")
    return Output(topology.events, key, raw)


Marks = dict[tuple[str, int], tuple[int, int]]
"""Per source partition, the place (offset, index) of the last input applied (SOURCE_HEADER)."""


def after_mark(marks: Marks, record: Record) -> bool:
    """Whether `record` comes after what was applied from its source; if so, mark it applied."""
    source = record.source()
    if source is None:
        return True
    partition, place = source
    if partition in marks and place <= marks[partition]:
        return False
    marks[partition] = place
    return True


class Stage:
    """What the stages share: skipping records already applied (the marker), the source of
    every output, and dead letters for an input the engine fails on (a bug), which must not stop
    the partition: what the stage keeps in memory is then reloaded from its table, which the
    failed step never wrote."""

    topology: Topology
    metrics: Metrics
    table: Overlay
    """Where the stage's state and its markers are, as the current batch sees them."""
    redo_limit: int = REDO_LIMIT
    """The largest marker with its redo: what the stage's changelog takes in one record."""

    def __init__(self, table: StateTable) -> None:
        self.table = Overlay(table)
        self.markers: dict[int, Marker] = {}
        """The marker of each partition's last step in the batch, as the overlay's entry would
        be: encoded only when the batch commits (`durable_writes`), not at every step."""
        self.applied: dict[int, int] = {}
        self.completed: set[int] = set()
        """Partitions whose last step was completed since they were assigned."""
        self.redo_parts: dict[int, tuple[bytes, ...]] = {}
        """Per partition completed, the redo parts to delete after its next marker: those its
        last marker names and any other found in its table (`durable_writes`)."""

    def handle(self, record: Record) -> Step:
        """The step of one record of the batch, its writes applied to the overlay."""
        partition = record.partition
        completed = self._complete_last_step(partition)
        if record.offset <= self._applied(partition):
            self.metrics.redelivered.inc()
            return Step(writes=completed, partition=partition)
        try:
            step = self._handle(record)
        except Exception as exc:
            log.exception("%s failed on %s; dead-lettered", type(self).__name__, record.origin)
            self.reset(partition)
            self.completed.add(partition)  # the failed step wrote nothing; the last one is complete
            step = Step([self._refuse(record, "engine_error", f"the engine failed on this record: "
                                                              f"{type(exc).__name__}: {exc}")])
        step.outputs = [out.made_from(record, index) for index, out in enumerate(step.outputs)]
        step.partition, step.marker = partition, self._marker(record)
        step.writes = [*completed, *step.writes]
        apply_writes(step.writes)
        self.markers[partition] = step.marker
        self.applied[partition] = record.offset
        return step

    def commit(self, steps: list[Step], put: Put) -> None:
        """Write the batch's `steps` through to the table with `put`, once the broker has all
        their records; the overlay is then empty."""
        for partition, key, value in durable_writes(steps, self.redo_limit, self.redo_parts):
            put(partition, key, value)
        self.table.pending.clear()
        self.markers.clear()

    def _complete_last_step(self, partition: int) -> list[Write]:
        """On the first record after (re)assignment: the writes of the last step whose marker
        survived, made again (a kill may have cut the changelog after the marker), before anything
        is read from the table; and returned, so that they are made durable with the next step.
        Their table is the overlay: a batch reads its own writes."""
        if partition in self.completed:
            return []
        writes = []
        # A partition with a marker in this batch was reassigned in its middle (`reset`): what
        # the batch wrote is in the overlay, and its marker is not stored yet.
        if partition not in self.markers:
            raw = self.table.get(marker_key(partition))
            redo = decode_marker(raw).redo if raw is not None else ()
            self.redo_parts[partition] = tuple(key for key, value in redo if is_redo_part(key, value))
            writes = [Write(self.table, key, value) for key, value in self._expanded(redo)]
        if writes:
            apply_writes(writes)
            self.reset(partition)  # anything already read from the table may predate the writes
        self.completed.add(partition)
        return writes

    def _delete_after_next_marker(self, partition: int, keys: list[bytes]) -> None:
        """The redo parts of `partition` among `keys` (found in its table) to be deleted after its
        next marker, as those its last marker names: a kill while a step's parts were written
        leaves parts no marker names, which the step made again need not overwrite (it may be cut
        into fewer parts)."""
        prefix = redo_parts_prefix(partition)
        found = (key for key in keys if key.startswith(prefix))
        self.redo_parts[partition] = tuple(dict.fromkeys((*self.redo_parts.get(partition, ()), *found)))

    def _expanded(self, redo: tuple[tuple[bytes, bytes | None], ...]) -> list[tuple[bytes, bytes | None]]:
        """A marker's redo with its parts, which were written before it, in their place."""
        writes = []
        for key, value in redo:
            if not is_redo_part(key, value):
                writes.append((key, value))
                continue
            raw = self.table.get(key)
            if raw is None:
                raise CorruptState(f"the redo part {key[1:]!r} a marker names is not in the table")
            writes += decode_marker(raw).redo
        return writes

    def prepare(self, records: list[Record]) -> None:
        """Before a batch's steps: whatever a step needs that depends on its record alone, for
        all of them at once (`CaseStage`: parsing). Optional: `handle` does it itself otherwise."""

    def next_offset(self, partition: int) -> int:
        """The offset this stage needs next on `partition`."""
        return self._applied(partition) + 1

    def _stored_marker(self, partition: int) -> Marker | None:
        """The marker of the partition's last step, in this batch or stored."""
        marker = self.markers.get(partition)
        if marker is not None:
            return marker
        raw = self.table.get(marker_key(partition))
        return decode_marker(raw) if raw is not None else None

    def _applied(self, partition: int) -> int:
        applied = self.applied.get(partition)
        if applied is None:
            marker = self._stored_marker(partition)
            applied = self.applied[partition] = marker.offset if marker is not None else -1
        return applied

    def _marker(self, record: Record) -> Marker:
        """What the marker after `record` records besides its offset."""
        return Marker(record.offset)

    def _handle(self, record: Record) -> Step:
        raise NotImplementedError

    def reset(self, partition: int) -> None:
        """Drop what is kept in memory for `partition` (revoked, or a step failed)."""
        self.applied.pop(partition, None)
        self.completed.discard(partition)

    def _refuse(self, record: Record, category: str, reason: str) -> Output:
        self.metrics.dead_letters.labels(category).inc()
        return dead_letter(self.topology, record.origin, category, reason, record.value or b"", record)


# ---------------------------------------------------------------- cases


class UnreadableCase(CorruptState):
    """A stored case state that cannot be read: refused by the state unpickler (forged), corrupt,
    or of a format this worker does not read."""

    def __init__(self, case_id: str, reason: str):
        super().__init__(f"the stored state of case {case_id} cannot be read ({reason})")


KEPT_CASES = 10_000
"""Decoded case states a partition keeps between steps, the latest written last: decoding one
costs a third of judging an event. About 25 MB a partition."""


class TableCases(MutableMapping[str, CaseState]):
    """The cases of one partition as the `CaseBook` sees them: decoded from the table on first
    use in a step (or kept from an earlier step), written back (every case touched) by
    `PartitionBook.flush`."""

    def __init__(self, table: StateTable, ids: set[str]):
        self.table = table
        self.ids = ids
        self.touched: dict[str, CaseState | None] = {}
        self.kept: dict[str, CaseState] = {}
        """Case states as the stage's table (its overlay) holds them: a step that fails drops the
        whole book, and a batch that fails stops the worker."""
        self._passed_by: dict[str, str] | None = None

    def __getitem__(self, case_id: str) -> CaseState:
        if case_id in self.touched:
            case = self.touched[case_id]
            if case is None:
                raise KeyError(case_id)
            return case
        if case_id not in self.ids:
            raise KeyError(case_id)
        case = self.kept.get(case_id)
        if case is None:
            try:
                case = decode_case(self.table.get(case_id.encode()))
            except Exception as exc:  # whatever the bytes are, the case cannot be judged from them
                reason = f"{type(exc).__name__}: {exc}"
                if self._passed_by is None:
                    raise UnreadableCase(case_id, reason) from exc
                self._passed_by[case_id] = reason
                raise KeyError(case_id) from exc
        self.touched[case_id] = case
        return case

    def get(self, case_id: str, default: Any = None) -> Any:
        # Mapping's `get` goes through `__getitem__` and a KeyError for every case not yet
        # known: the engine asks up to three times an event.
        touched = self.touched
        if case_id in touched:
            case = touched[case_id]
            return default if case is None else case
        if case_id not in self.ids:
            return default
        try:
            return self[case_id]
        except KeyError:  # unreadable, passed by (`passing_unreadable`)
            return default

    def written(self) -> None:
        """The touched cases are now as the table holds them."""
        kept = self.kept
        for case_id, case in self.touched.items():
            kept.pop(case_id, None)
            if case is not None:
                kept[case_id] = case
        while len(kept) > KEPT_CASES:
            del kept[next(iter(kept))]
        self.touched = {}

    @contextmanager
    def passing_unreadable(self) -> Iterator[dict[str, str]]:
        """While open, an unreadable case reads as absent and is listed (case id → reason) in the
        dict this yields; otherwise reading one raises `UnreadableCase`. A tick passes such a
        case by: one bad record must not stop the deadlines of every other case of the
        partition. An event for it is still refused: judging it on a fresh state would raise
        false alerts against its officials. Its stored bytes stay as they are, for repair."""
        self._passed_by = passed = {}
        try:
            yield passed
        finally:
            self._passed_by = None

    def __setitem__(self, case_id: str, case: CaseState) -> None:
        self.touched[case_id] = case
        self.ids.add(case_id)

    def __delitem__(self, case_id: str) -> None:
        self[case_id]  # KeyError when absent
        self.touched[case_id] = None
        self.ids.discard(case_id)

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)


_ABSENT = object()


class TableRetired(MutableMapping[str, CaseState]):
    """The retired cases of one partition (`CaseBook.retired`): compressed entries of the case table
    under their own key prefix, read only when an event for one comes."""

    def __init__(self, table: StateTable, partition: int):
        self.table = table
        self.partition = partition
        self.touched: dict[str, CaseState | None] = {}

    def __getitem__(self, case_id: str) -> CaseState:
        case = self._find(case_id)
        if case is None:
            raise KeyError(case_id)
        return case

    def _find(self, case_id: str) -> CaseState | None:
        if case_id in self.touched:
            return self.touched[case_id]
        raw = self.table.get(RETIRED_PREFIX + case_id.encode())
        if raw is None:
            return None
        try:
            return decode_retired(raw)
        except Exception as exc:
            raise UnreadableCase(case_id, f"retired: {type(exc).__name__}: {exc}") from exc

    def __setitem__(self, case_id: str, case: CaseState) -> None:
        self.touched[case_id] = case

    def __delitem__(self, case_id: str) -> None:
        self[case_id]  # KeyError when absent
        self.touched[case_id] = None

    def pop(self, case_id: str, default: Any = _ABSENT) -> Any:
        # The engine asks at every new case's first event, and the table's answer is nearly always
        # none, which MutableMapping's `pop` learns from a KeyError (and a case it finds it decodes twice).
        case = self._find(case_id)
        if case is None:
            if default is _ABSENT:
                raise KeyError(case_id)
            return default
        self.touched[case_id] = None
        return case

    def __iter__(self) -> Iterator[str]:
        raise NotImplementedError("retired cases are looked up by id, not listed")

    def __len__(self) -> int:
        raise NotImplementedError("retired cases are looked up by id, not counted")

    def flush(self) -> list[Write]:
        writes = [Write(self.table, RETIRED_PREFIX + case_id.encode(),
                        None if case is None else encode_retired(self.partition, case))
                  for case_id, case in self.touched.items()]
        self.touched = {}
        return writes


class PartitionBook:
    """A `CaseBook` over the cases of one partition of the events topic. Timers are kept in memory
    and rebuilt from the table when the partition is (re)assigned; the clock is in the marker."""

    def __init__(self, partition: int, book: CaseBook, cases: TableCases, retired: TableRetired):
        self.partition = partition
        self.book = book
        self.cases = cases
        self.retired = retired

    @classmethod
    def load(cls, partition: int, reference: ReferenceData, table: StateTable, now: datetime | None,
             redo_parts: list[bytes]) -> PartitionBook:
        """The partition's cases and timers as `table` holds them; `now`: its clock, from the marker
        of its last step. The keys of the redo parts in the table are added to `redo_parts`."""
        ids: set[str] = set()
        timers = TimerIndex()
        for key, raw in stored_items(table, redo_parts):
            if key.startswith(RETIRED_PREFIX):
                continue
            header = case_header(raw)
            if header.partition != partition:
                continue  # another partition's case (a standby copy)
            case_id = key.decode()
            ids.add(case_id)
            if header.wake_at is not None:
                timers.schedule(case_id, header.wake_at)
        cases, retired = TableCases(table, ids), TableRetired(table, partition)
        return cls(partition, CaseBook(reference.judge(), cases, timers, now, retired=retired), cases, retired)

    def flush(self, table: StateTable) -> list[Write]:
        writes = self.retired.flush()
        timers = self.book.timers
        for case_id, case in self.cases.touched.items():
            key = case_id.encode()
            if case is None:
                writes.append(Write(table, key, None))
            else:
                writes.append(Write(table, key, encode_case(self.partition, timers.scheduled(case_id), case)))
        self.cases.written()
        return writes


class CaseStage(Stage):
    """Consumes the events topic: events, and the workers' ticks and other control records."""

    def __init__(self, topology: Topology, reference: ReferenceData, cases: StateTable, clock: Clock,
                 max_future_skew: timedelta, metrics: Metrics):
        super().__init__(cases)
        self.topology = topology
        self.reference = reference
        self.clock = clock
        self.max_future_skew = max_future_skew
        self.metrics = metrics
        self.books: dict[int, PartitionBook] = {}
        self.held_clocks: dict[int, datetime] = {}
        """The clocks of partitions whose books were dropped (revoked, or a failed step) and not
        loaded again, until the next assignment says which are still this worker's: a rebalance
        that never ends must show its deadlines waiting longer, not read as none waiting."""
        self.prepared: dict[tuple[int, int], tuple[CloudEvent, int] | InvalidEvent] = {}
        """The batch's events parsed, with their content digests, by partition and offset
        (`prepare`)."""
        self.accepted: Counter[tuple[str, str | None]] = Counter()
        """Events accepted in the batch, by kind and department: counted when it commits (a
        labelled counter takes a lock at every increment; this was 2-3% of the stage's time)."""
        metrics.expect_departments(reference.entries.values())
        # Read when Prometheus scrapes, not set by the steps: a worker whose event loop stalls
        # runs no step, and its deadlines waiting must still show (DeadlinesLagging).
        metrics.open_cases.set_function(lambda: sum(len(book.cases) for book in list(self.books.values())))
        metrics.clock_seconds.set_function(self._clock_seconds)
        metrics.clock_behind.set_function(self._clock_behind)

    def book(self, partition: int) -> PartitionBook:
        book = self.books.get(partition)
        if book is None:
            marker = self._stored_marker(partition)
            redo_parts: list[bytes] = []
            book = self.books[partition] = PartitionBook.load(partition, self.reference, self.table,
                                                              marker.clock if marker is not None else None, redo_parts)
            self.held_clocks.pop(partition, None)
            self._delete_after_next_marker(partition, redo_parts)
            log.info("judging events partition %s: %s cases, %s timers, clock %s", partition, len(book.cases),
                     len(book.book.timers), book.book.now)
        return book

    def commit(self, steps: list[Step], put: Put) -> None:
        super().commit(steps, put)
        for (kind, department), count in self.accepted.items():
            self.metrics.event_accepted(kind, department, count)
        self.accepted.clear()

    def prepare(self, records: list[Record]) -> None:
        """Parse the batch's events in one loop before any is judged. Between the engine's steps,
        parsing an event and its content digest took about 24 µs (a sixth of a step), in a loop
        of their own about 13 (8 in a loop over the same event log alone): the parser's tables
        and code stay in the processor's caches."""
        prepared = self.prepared = {}
        for record in records:
            if is_control(record):
                continue
            try:
                prepared[record.partition, record.offset] = _parsed(record.value or b"")
            except Exception:  # left to its step, which fails the same way in its place (a dead letter)
                continue

    def reference_wanted(self, record: Record) -> ReferenceChanged | None:
        """A reference change the worker has not read yet (the worker reads it before `handle`)."""
        try:
            control = read_control(record)
        except ValueError:
            return None
        if isinstance(control, ReferenceChanged) and not self.reference.covers(control):
            return control
        return None

    def reset(self, partition: int) -> None:
        super().reset(partition)
        book = self.books.get(partition)
        if book is not None and book.book.now is not None:
            # Held before the book goes: a scrape in between must not miss the partition.
            self.held_clocks[partition] = book.book.now
        self.books.pop(partition, None)

    def assigned(self, partitions: Iterable[int]) -> None:
        """The events partitions this worker judges after a rebalance: the clocks held for any
        other are dropped (another worker reports them now)."""
        kept = set(partitions)
        self.held_clocks = {partition: clock for partition, clock in self.held_clocks.items() if partition in kept}

    def _marker(self, record: Record) -> Marker:
        book = self.books.get(record.partition)
        if book is not None:
            return Marker(record.offset, book.book.now)
        stored = self._stored_marker(record.partition)  # a failed step: the clock stays as stored
        return Marker(record.offset, stored.clock if stored is not None else None)

    def _handle(self, record: Record) -> Step:
        partition = record.partition
        book = self.book(partition)
        step = Step()
        arrived = self.clock.now()
        try:
            control = read_control(record)
        except ValueError as exc:
            step.outputs.append(self._refuse(record, "invalid_control", str(exc)))
            return step
        trailing: CityInput | None = None
        # `judged`: the cases the record itself is about, whose alerts could not be found before
        # it arrived; `fired`: timers the clock passed, each due at its instant.
        judged: list[CaseOutcome] = []
        if control is None:
            fired, judged, trailing = self._event(book, record, step, arrived)
        elif isinstance(control, Tick):
            fired = self._tick(book, control, record, step, arrived)
        elif isinstance(control, ReferenceChanged):
            fired, judged = [], self._reference_changed(book, control)
        else:
            step.outputs.append(self._refuse(record, "invalid_control", "not a control record of the events topic"))
            return step
        city: list[CityInput] = []
        for outcome in fired:
            self._alert_outputs(outcome, step, outcome.judged_at)
            city += outcome.city_inputs()
        for outcome in judged:
            self._alert_outputs(outcome, step, max(outcome.judged_at, arrived))
            city += outcome.city_inputs()
        if trailing is not None:
            city.append(trailing)
        step.outputs += self._city_outputs(city, book)
        if isinstance(control, Tick) and book.book.now is not None:
            # The city stage's watermark is the oldest partition clock: it must hear this one
            # move even when nothing here is for it.
            step.outputs.append(control_output(self.topology.city, 0, PartitionClock(partition, book.book.now)))
        step.writes += book.flush(self.table)
        return step

    def oldest_clock(self) -> datetime | None:
        """The engine clock of this worker: the oldest of its partitions' (None before any),
        those held through a rebalance included."""
        clocks = [book.book.now for book in list(self.books.values()) if book.book.now is not None]
        clocks += list(self.held_clocks.values())
        return min(clocks) if clocks else None

    def _clock_seconds(self) -> float:
        oldest = self.oldest_clock()
        return math.nan if oldest is None else oldest.timestamp()

    def _clock_behind(self) -> float:
        oldest = self.oldest_clock()
        return 0.0 if oldest is None else max(0.0, self.clock.real_seconds(self.clock.now() - oldest))

    def _event(self, book: PartitionBook, record: Record, step: Step,
               arrived: datetime) -> tuple[list[CaseOutcome], list[CaseOutcome], CityInput | None]:
        """The outcomes of the timers an event's time passed, that of its case, and an exemption
        for the city stage after them. `arrived`: the worker's clock when the step began."""
        raw = record.value or b""
        parsed = self.prepared.pop((record.partition, record.offset), None) or _parsed(raw)
        if isinstance(parsed, InvalidEvent):
            step.outputs.append(self._refuse(record, parsed.category, parsed.reason))
            return [], [], None
        event, digest = parsed
        ahead = too_far_ahead("time:", event.time, arrived, self.max_future_skew, "the worker's")
        if ahead:
            step.outputs.append(self._refuse(record, "future_time", ahead))
            return [], [], None
        if isinstance(event, ExemptionRecorded):
            return book.book.advance(event.time), [], ExemptionInput(event.subject, exemption_of(event), event.time,
                                                                     record.origin, raw)
        duplicates, unknown = book.book.stats.duplicates, book.book.stats.unknown_items
        try:
            # Per case: the events topic is keyed by case, so a case's events meet on one partition.
            outcomes = book.book.process(event, digest)
        except ConflictingDuplicate as conflict:
            step.outputs.append(self._refuse(record, "conflicting_duplicate", str(conflict)))
            return [], [], None
        if book.book.stats.unknown_items > unknown:  # an inc takes a lock: not for every event
            self.metrics.unknown_items.inc(book.book.stats.unknown_items - unknown)
        if book.book.stats.duplicates > duplicates:
            self.metrics.duplicates.inc()
            return [], [], None
        self.accepted[event.kind, book.book.department_of(event)] += 1
        # The case's own outcome comes last, after the timers the clock passed on the way to its time.
        return outcomes[:-1], outcomes[-1:], None

    def _tick(self, book: PartitionBook, tick: Tick, record: Record, step: Step,
              arrived: datetime) -> list[CaseOutcome]:
        ahead = too_far_ahead("tick at", tick.time, arrived, self.max_future_skew, "this worker's")
        if ahead:
            step.outputs.append(self._refuse(record, "future_time", f"{ahead}: the workers' clocks disagree"))
            return []
        with book.cases.passing_unreadable() as unreadable:
            outcomes = book.book.advance(tick.time)
        for case_id, reason in unreadable.items():
            log.error("case %s passed by: its stored state cannot be read (%s)", case_id, reason)
            step.outputs.append(self._refuse(record, "engine_error", (
                f"case {case_id}: its stored state cannot be read ({reason}); its deadlines are not judged "
                "until the state is repaired (the other cases' are)")))
        return outcomes

    def _reference_changed(self, book: PartitionBook, change: ReferenceChanged) -> list[CaseOutcome]:
        judge = self.reference.judge()
        if "catalog" in change.kinds:
            self.metrics.expect_departments(self.reference.entries.values())
        if "calendar" in change.kinds:
            reason: Message = calendar_changed(judge.calendar)
        else:
            reason = CATALOG_CHANGED
        return book.book.rejudge_all(judge, reason)

    def _alert_outputs(self, outcome: CaseOutcome, step: Step, found_at: datetime) -> None:
        """`found_at`: the earliest the outcome's alerts could have been found (`Emitted.found_at`)."""
        if not outcome.alerts:  # most outcomes
            return
        topology = self.topology
        for alert in outcome.alerts:
            step.outputs.append(alert_output(topology, alert))
        self.metrics.published(outcome.alerts, (), self.clock.now(),
                               dict.fromkeys((alert.alert_id for alert in outcome.alerts), found_at), self.clock)

    def _city_outputs(self, inputs: list[CityInput], book: PartitionBook) -> list[Output]:
        """The step's inputs for the city stage, each with this partition's promise."""
        return [Output(self.topology.city, given.case_id.encode(),
                       encode_city_input(CityWork(given, book.partition, promise)), 0)
                for given, promise in promised(inputs, book.book.now)]


def _parsed(raw: bytes) -> tuple[CloudEvent, int] | InvalidEvent:
    """An event and its content digest, or why it is refused."""
    try:
        return parse_event_with_digest(raw)
    except InvalidEvent as invalid:
        return invalid


# ---------------------------------------------------------------- the city


_SEP = b"\x1f"  # ids and codes hold no control characters
_HEADER_KEY = b"s"

STEP_INPUTS = 64
"""At most this many queued inputs are applied in one step of the city stage, so that a step's
writes fit its marker's redo; the step sends itself a `Continue` for the rest."""


class CityHeader(NamedTuple):
    """The city stage's own bookkeeping, one table entry, written at every step of the stage as
    JSON (`encode_city_header`; a header pickled before 2026-12-01 still reads)."""

    heard: dict[int, datetime]
    """The latest promise heard from each events partition (`Watermark`)."""
    marks: Marks
    clock: datetime | None
    arrivals: int


CITY_HEADER_MAGIC = b"PWH\x01"
"""A city header's first bytes: the version of its JSON (`_CityHeaderRecord`)."""
_CityHeaderRecord = strict_record(tuple[list[tuple[Int, Micros]], list[tuple[str, Int, Int, Int]], Micros | None,
                                        Int])
"""(heard: partition and instant, marks: source topic, partition, offset and index, clock,
arrivals), instants as `micros`."""


def encode_city_header(header: CityHeader) -> bytes:
    # Pickled, the header cost the city stage about a tenth of its time (its instants and its
    # class through Python); as JSON, a tenth of that.
    return CITY_HEADER_MAGIC + orjson.dumps((
        [(partition, remembered_micros(moment)) for partition, moment in header.heard.items()],
        [(topic, partition, *place) for (topic, partition), place in header.marks.items()],
        None if header.clock is None else remembered_micros(header.clock), header.arrivals))


def decode_city_header(raw: bytes) -> CityHeader:
    if not raw.startswith(CITY_HEADER_MAGIC):
        return decode_pickled(raw, CityHeader)  # by a release before 2026-12-01
    heard, marks, clock, arrivals = read_checked(_CityHeaderRecord, raw[len(CITY_HEADER_MAGIC):],
                                                 "the city stage's header", ("heard", "marks", "clock", "arrivals"))
    return CityHeader({partition: from_micros(moment) for partition, moment in heard},
                      {(topic, partition): (offset, index) for topic, partition, offset, index in marks},
                      None if clock is None else from_micros(clock), arrivals)


class StoredItem(NamedTuple):
    """A PW-013 item's state but its cases and its alerts, which are entries of their own: an item
    with thousands of waiting applications, and a PW-013 record for each pair of them a grant
    overtook, must not be one value rewritten on every change (nor grow past a record's size).
    Written as JSON of its pending pairs and left cases (`state_codec.dumps_item`); pickled, as
    itself, before table format 5."""

    alerts: dict
    """Empty since the alerts became entries; an item stored before holds them here, and they move
    to their entries the next time the item changes."""
    pending: set
    left: dict


class StoredCase(NamedTuple):
    """A case as its item knows it (`state_codec.dumps_item_case`; pickled before table format 5)."""

    standing: ItemCase
    report: CaseReport | None


def _key(kind: bytes, *parts: str) -> bytes:
    return _SEP.join((kind, *(part.encode() for part in parts)))


class CityStage(Stage):
    """Consumes the city topic (one partition): PW-013 items and the whole city's referrals in one
    `CityBook`, because SZ-XK art. 12(1) compares each referral with the others of the same officer
    or department. Its watermark is the oldest clock among the events partitions, heard on every
    input they send and on every tick."""

    def __init__(self, topology: Topology, settings: RuleSettings, table: StateTable, clock: Clock,
                 metrics: Metrics):
        super().__init__(table)
        self.redo_limit = topology.max_record_bytes - RECORD_OVERHEAD
        self.topology = topology
        self.settings = settings
        self.clock = clock
        self.metrics = metrics
        self.book: CityBook | None = None
        self.header = CityHeader({}, {}, None, 0)
        self.watermark = Watermark(topology.partitions)
        self.stored_alerts: dict[str, dict[tuple[str, str], Alert]] = {}
        """Each item's PW-013 records as the table has them, to write only those that changed."""

    def reset(self, partition: int) -> None:
        super().reset(partition)
        self.book = None

    def _loaded(self) -> CityBook:
        if self.book is not None:
            return self.book
        book = CityBook(self.settings, track_changes=True)
        header = CityHeader({}, {}, None, 0)
        items: dict[str, StoredItem] = {}
        cases: dict[str, dict[str, StoredCase]] = {}
        alerts: dict[str, dict[tuple[str, str], Alert]] = {}
        workings: list[_Working] = []
        pending = []
        redo_parts: list[bytes] = []
        for key, raw in stored_items(self.table, redo_parts):
            kind, *rest = key.split(_SEP)
            if kind == _HEADER_KEY:
                header = decode_city_header(raw)
            elif kind == b"r":
                workings.append(decode_entry(raw, "referral", _Working))
            # An item or item case pickled before table format 5 reads as the record itself; one
            # written since as its fields (`state_codec.dumps_item`, `dumps_item_case`).
            elif kind == b"h":
                item = decode_entry(raw, "item", StoredItem)
                items[rest[0].decode()] = item if isinstance(item, StoredItem) else StoredItem({}, *item)
            elif kind == b"c":
                cases.setdefault(rest[0].decode(), {})[rest[1].decode()] = StoredCase(
                    *decode_entry(raw, "item_case", StoredCase))
            elif kind == b"a":
                alerts.setdefault(rest[0].decode(), {})[(rest[1].decode(), rest[2].decode())] = decode_entry(
                    raw, "alert", Alert)
            elif kind == b"q":
                through, work = decode_queued(raw)
                pending.append((through, work.given.case_id, int(rest[0]), work.given))
        states, reports = {}, {}
        self.stored_alerts = alerts
        for code, item in items.items():
            stored = cases.get(code, {})
            # A kill between a step's writes can leave the header naming cases whose entries were
            # already deleted: they were being forgotten, and are (their alerts' entries too, at
            # the item's next write, since `stored_alerts` still has them).
            states[code] = ItemState(code, {cid: c.standing for cid, c in stored.items()},
                                     {pair: a for pair, a in (item.alerts | alerts.get(code, {})).items()
                                      if set(pair) <= stored.keys()},
                                     {pair for pair in item.pending if set(pair) <= stored.keys()},
                                     {cid: at for cid, at in item.left.items() if cid in stored})
            reports[code] = {cid: c.report for cid, c in stored.items() if c.report is not None}
        heapq.heapify(pending)
        self._delete_after_next_marker(0, redo_parts)
        book.load_state(CityState(states, reports, workings, header.clock, pending, header.arrivals))
        self.book, self.header = book, header
        self.watermark = Watermark(self.topology.partitions, header.heard)
        log.info("city loaded: %s referrals, %s items, %s inputs waiting, watermark clock %s", len(workings),
                 len(states), len(pending), header.clock)
        return book

    def _handle(self, record: Record) -> Step:
        book = self._loaded()
        step = Step()
        try:
            control = read_control(record)
        except ValueError as exc:
            step.outputs.append(self._refuse(record, "invalid_control", str(exc)))
            return step
        emitted = Emitted()
        queued_raw = None
        fresh = after_mark(self.header.marks, record)
        if isinstance(control, PartitionClock):
            if fresh:
                self.watermark.hear(control.partition, control.time)
        elif control is None:
            if fresh:
                work = decode_city_input(record.value or b"")
                self.watermark.hear(work.partition, work.clock)
                emitted = book.take(work.given)
                queued_raw = record.value
        elif not isinstance(control, Continue):
            step.outputs.append(self._refuse(record, "invalid_control", "not a control record of the city topic"))
            return step
        watermark = self.watermark.value
        if watermark is not None:
            emitted.extend(book.advance(watermark, STEP_INPUTS))
            waiting = book.next_input()
            if waiting is not None and waiting < watermark:
                step.outputs.append(control_output(self.topology.city, 0, Continue()))
        self._outputs(emitted, step)
        self._writes(book, queued_raw, step)
        self.metrics.city_waiting.set(book.waiting)
        return step

    def _alert_writes(self, code: str, alerts: dict[tuple[str, str], Alert], writes: list[Write]) -> None:
        """The item's PW-013 records that changed since the table last had them (a record is
        replaced, never changed in place)."""
        stored = self.stored_alerts.setdefault(code, {})
        for pair, alert in alerts.items():
            if stored.get(pair) is not alert:
                stored[pair] = alert
                writes.append(Write(self.table, _key(b"a", code, *pair), encode_entry(state_codec.dumps_alert(alert))))
        for pair in sorted(stored.keys() - alerts.keys()):
            del stored[pair]
            writes.append(Write(self.table, _key(b"a", code, *pair), None))
        if not stored:
            del self.stored_alerts[code]

    def _outputs(self, emitted: Emitted, step: Step) -> None:
        topology = self.topology
        step.outputs.extend(alert_output(topology, alert) for alert in emitted.alerts)
        step.outputs.extend(referral_output(topology, version) for version in emitted.referrals)
        self.metrics.published(emitted.alerts, emitted.referrals, self.clock.now(), emitted.found_at, self.clock)
        for refused in emitted.refused:
            step.outputs.append(self._refused(refused))

    def _refused(self, refused: Refusal) -> Output:
        self.metrics.dead_letters.labels(refused.category).inc()
        return dead_letter(self.topology, refused.origin, refused.category, refused.reason, refused.raw)

    def _writes(self, book: CityBook, queued_raw: bytes | None, step: Step) -> None:
        changes = book.take_changes()
        table, writes = self.table, step.writes
        self.header = self.header._replace(clock=book.clock, arrivals=book.arrivals)
        applied = set(changes.dequeued)
        for arrival, through in changes.queued:
            if arrival not in applied:
                writes.append(Write(table, _key(b"q", str(arrival)), encode_queued(through, queued_raw)))
        for arrival in applied - {arrival for arrival, _ in changes.queued}:
            writes.append(Write(table, _key(b"q", str(arrival)), None))
        referrals = book.referrals.referrals
        for case_id in sorted(changes.referrals):
            writes.append(Write(table, _key(b"r", case_id), encode_entry(state_codec.dumps_referral(referrals[case_id]))))
        for code in sorted(changes.items):
            state = book.items.get(code)
            self._alert_writes(code, state.alerts if state is not None else {}, writes)
            value = None if state is None else encode_entry(state_codec.dumps_item(state.pending, state.left))
            writes.append(Write(table, _key(b"h", code), value))
        for code, case_id in sorted(changes.item_cases):
            state = book.items.get(code)
            if state is not None and case_id in state.cases:
                stored = state_codec.dumps_item_case(state.cases[case_id], book.reports[code].get(case_id))
                writes.append(Write(table, _key(b"c", code, case_id), encode_entry(stored)))
            else:
                writes.append(Write(table, _key(b"c", code, case_id), None))
        writes.append(Write(table, _HEADER_KEY, encode_city_header(self.header)))
