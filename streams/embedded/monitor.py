"""The embedded monitor: journal, engine and outputs in one process, with checkpoints.

Every batch of input is one transaction: the events go into the journal with the engine clock at
which they were applied, the alerts and referral versions they caused are stored, and the new
clock is recorded. Only then does ingest return. After a crash the engine is rebuilt from the last
checkpoint plus the journal after it, replayed at the recorded clocks, and its outputs are thrown
away (they were stored with their inputs): nothing accepted is lost, nothing is emitted twice.
"""

from __future__ import annotations

import logging
import os
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import orjson

from permitwatch.alerts.clock import WorkingCalendar
from permitwatch.alerts.engine import Emitted, Engine, EngineState
from permitwatch.models.calendar import CalendarOverride
from permitwatch.models.catalog import Catalog
from permitwatch.models.deadletter import DeadLetter
from permitwatch.models.events import CloudEvent, InvalidEvent, parse_event, parse_event_with_digest
from permitwatch.models.files import parse_structured
from permitwatch.models.settings import RuleSettings
from permitwatch.models.views import ActionRecord, IngestReport, ReferenceChange, Rejection
from permitwatch.streams import state_codec
from permitwatch.streams.clocks import Clock, history_warning, too_far_ahead
from permitwatch.streams.metrics import Metrics
from permitwatch.streams.port import RawInput
from permitwatch.streams.retired import CompactCases
from permitwatch.streams.store import Store, StoreError

log = logging.getLogger("permitwatch.embedded")

CHECKPOINT_FORMAT = 5
"""Bump when the engine's state classes change shape, or what a release before could not read (4
since 2026-12-01: retired cases as JSON; 5 since later that day: a JSON header line with a
checksum of the file, then the engine's state as JSON, `state_codec.dumps_engine`, where formats 3
and 4 were one pickle); a
checkpoint of another format is then ignored and the engine is rebuilt from the whole journal.
This release also reads formats 3 and 4 (`READ_CHECKPOINTS`)."""
READ_CHECKPOINTS = frozenset({3, 4, CHECKPOINT_FORMAT})


def _checksum(header: dict, state: bytes) -> int:
    """Of a format-5 checkpoint's header (its other fields) and state: a digit changed on disk in
    the journal position would otherwise replay from the wrong row, losing or repeating events."""
    return zlib.crc32(state, zlib.crc32(orjson.dumps(header, option=orjson.OPT_SORT_KEYS)))


class Checkpoint(NamedTuple):
    watermark: int
    """The journal position the state reflects."""
    catalog: Catalog
    calendars: list[CalendarOverride]
    state: EngineState


def _read_checkpoint(data: bytes) -> Checkpoint:
    """A checkpoint, whatever is wrong with it raised (its file is then ignored). Format 5: a JSON
    header line, then the engine's state; formats 3 and 4: one pickle of the header with the
    state under `state`."""
    if data.startswith(b"{"):
        header_line, _, state_data = data.partition(b"\n")
        header = orjson.loads(header_line)
        if not isinstance(header, dict) or header.pop("crc32", None) != _checksum(header, state_data):
            raise ValueError("a checkpoint whose checksum does not match what it holds (damaged on disk?)")
    else:
        header, state_data = state_codec.loads(data), None
    # A JSON header is format 5's; formats 3 and 4 were pickles.
    expected = {CHECKPOINT_FORMAT} if state_data is not None else READ_CHECKPOINTS - {CHECKPOINT_FORMAT}
    found = header.get("format") if isinstance(header, dict) else type(header).__name__
    if type(found) is not int or found not in expected:
        raise ValueError(f"checkpoint format {found!r:.40}, expected one of {sorted(READ_CHECKPOINTS)}")
    if state_data is not None and not state_data.startswith(state_codec.ENGINE_MAGIC):
        raise ValueError("a format-5 checkpoint whose state is not an engine record")
    state = header.get("state") if state_data is None else state_codec.loads(state_data)
    watermark, catalog, calendars = header.get("watermark"), header.get("catalog"), header.get("calendars")
    if (type(watermark) is not int or watermark < 0 or not isinstance(catalog, str | bytes)
            or not isinstance(calendars, str | bytes)):
        raise ValueError("a checkpoint header without its journal position or its reference data")
    if not isinstance(state, EngineState):
        raise ValueError(f"a checkpoint whose state is a {type(state).__name__}")
    overrides = orjson.loads(calendars)
    if not isinstance(overrides, list):
        raise ValueError("a checkpoint whose calendars are not a list")
    return Checkpoint(watermark, parse_structured(catalog.encode() if isinstance(catalog, str) else catalog,
                                                  Catalog, "catalog"),
                      [CalendarOverride.model_validate(override) for override in overrides], state)


class _Poisoned(Exception):
    def __init__(self, index: int, error: str):
        super().__init__(error)
        self.index = index
        self.error = error


@dataclass
class MonitorOptions:
    max_future_skew: timedelta = timedelta(minutes=5)
    """An event claiming a time further ahead of the clock than this is refused: it would move the
    clock past real deadlines and raise false alerts."""
    checkpoint_every_events: int = 200_000
    checkpoint_every_seconds: float = 300.0
    warn_of_history: bool = True
    """Warn when a batch holds events far older than the clock (not when importing history)."""


class EmbeddedMonitor:
    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        calendars: list[CalendarOverride],
        settings: RuleSettings,
        clock: Clock,
        metrics: Metrics | None = None,
        options: MonitorOptions | None = None,
        checkpoint_path: Path | None = None,
    ):
        self.store = store
        self.settings = settings
        self.clock = clock
        self.metrics = metrics or Metrics("embedded")
        self.options = options or MonitorOptions()
        self.checkpoint_path = checkpoint_path or store.path.with_suffix(".checkpoint")
        self.lock = store.write_lock
        self.listeners: list[Callable[[], None]] = []
        self._initial = (catalog, calendars)
        self.catalog = catalog
        self.calendars = list(calendars)
        self.engine = self._new_engine()
        self._since_checkpoint = 0
        self._checkpoint_at = time.monotonic()
        self._warning_cache: tuple[float, int] = (0.0, 0)
        self._checkpoint_child: int | None = None
        self._recovered = False

    # ----- reference data -----

    def _new_engine(self) -> Engine:
        # The journal knows every event the monitor accepted (the engine need not keep their ids).
        return Engine(self.catalog.by_code(), WorkingCalendar.of(self.calendars), self.settings, log_wide_ids=False,
                      retired=CompactCases())

    def _reference_raw(self) -> tuple[bytes, bytes]:
        return (orjson.dumps(self.catalog.model_dump(mode="json")),
                orjson.dumps([c.model_dump(mode="json") for c in self.calendars]))

    def _apply_reference(self, kind: str, raw: bytes) -> Emitted:
        if kind == "catalog":
            self.catalog = parse_structured(raw, Catalog, "catalog")
            self.metrics.expect_departments(self.catalog.items)
            return self.engine.set_catalog(self.catalog.by_code())
        override = parse_structured(raw, CalendarOverride, "calendar")
        self.calendars = [c for c in self.calendars if c.version != override.version] + [override]
        return self.engine.set_calendar(WorkingCalendar.of(self.calendars))

    def update_reference(self, kind: str, raw: bytes) -> ReferenceChange:
        """An admin uploads a catalog or a calendar file: journalled, applied, open deadlines
        recomputed (provisional ones may become exact and alerts move)."""
        parse_structured(raw, Catalog if kind == "catalog" else CalendarOverride, kind)
        with self.lock:
            now = self.clock.now()
            try:
                with self.store.transaction() as tx:
                    emitted = self.engine.advance(now)
                    self.store.journal_reference(tx, kind, raw, self.engine.now or now, now)
                    emitted.extend(self._apply_reference(kind, raw))
                    self._store_outputs(tx, emitted, now)
            except StoreError:
                self._rebuild()
                raise
        self._notify()
        return ReferenceChange.of(kind, emitted.alerts)

    # ----- start-up -----

    def recover(self) -> None:
        """Rebuild the engine: checkpoint, then the journal after it at its recorded clocks, then
        the last committed clock. Outputs of the rebuild are discarded (they are stored)."""
        with self.lock:
            self._rebuild()
            if self.store.meta("genesis_catalog") is None:
                catalog_raw, calendars_raw = self._reference_raw()
                with self.store.transaction() as tx:
                    Store.set_meta(tx, "genesis_catalog", catalog_raw.decode())
                    Store.set_meta(tx, "genesis_calendars", calendars_raw.decode())
            else:
                self._adopt_startup_reference()
            self._recovered = True

    def _rebuild(self) -> None:
        watermark = self._load_checkpoint()
        self.metrics.expect_departments(self.catalog.items)
        replayed = 0
        for row in self.store.journal_after(watermark):
            try:
                self.engine.advance(row.clock)
                if row.kind == "event":
                    self.engine.process(parse_event(row.raw), raw=row.raw, digest=row.digest)
                else:
                    self._apply_reference(row.kind, row.raw)
            except Exception:  # a journal row an older version accepted: keep going without it
                log.exception("journal row %s could not be replayed; skipped", row.seq)
            replayed += 1
        last = self.store.meta("clock")
        if last is not None:
            self.engine.advance(datetime.fromisoformat(last))
        self._since_checkpoint = replayed
        log.info("engine rebuilt: checkpoint at journal %s, %s rows replayed, clock %s", watermark, replayed,
                 self.engine.now)

    def _load_checkpoint(self) -> int:
        """The journal position the engine state now reflects (0: a fresh engine)."""
        genesis = self.store.meta("genesis_catalog")
        if genesis is not None:
            self.catalog = parse_structured(genesis.encode(), Catalog, "catalog")
            self.calendars = [CalendarOverride.model_validate(c)
                              for c in orjson.loads(self.store.meta("genesis_calendars") or "[]")]
        self.engine = self._new_engine()
        if not self.checkpoint_path.exists():
            return 0
        try:
            checkpoint = _read_checkpoint(self.checkpoint_path.read_bytes())
        except Exception as exc:  # any unreadable checkpoint: rebuild from the whole journal instead
            log.warning("checkpoint %s not used (%s); replaying the whole journal", self.checkpoint_path, exc)
            return 0
        if checkpoint.watermark > self.store.last_journal_seq():
            log.warning("checkpoint is ahead of the journal (restored database?); replaying the whole journal")
            return 0
        self.catalog, self.calendars = checkpoint.catalog, checkpoint.calendars
        self.engine = self._new_engine()
        self.engine.load_state(checkpoint.state)
        return checkpoint.watermark

    def _adopt_startup_reference(self) -> None:
        """Reference files given at start that differ from the stored ones become changes."""
        wanted_catalog, wanted_calendars = self._initial
        if wanted_catalog.items and wanted_catalog != self.catalog:
            self.update_reference("catalog", orjson.dumps(wanted_catalog.model_dump(mode="json")))
        for override in wanted_calendars:
            if override not in self.calendars:
                self.update_reference("calendar", orjson.dumps(override.model_dump(mode="json")))

    def checkpoint(self) -> None:
        """Save the engine state with the journal position it reflects (atomic file replace).
        Holds the lock while it writes every open case (about 23 µs a case); see
        `_maybe_checkpoint` for the copy that does not."""
        with self.lock:
            self._reap_background_checkpoint(wait=True)
            self._write_checkpoint(self._checkpoint_header(), self.engine.state())
            self._checkpointed()
        self.metrics.checkpoint_bytes.set(self.checkpoint_path.stat().st_size)

    def _checkpoint_header(self) -> dict:
        """Everything a checkpoint holds but the engine state, which the writer adds (in the
        forked child, after the fork)."""
        catalog_raw, calendars_raw = self._reference_raw()
        return {"format": CHECKPOINT_FORMAT, "watermark": self.store.last_journal_seq(),
                "catalog": catalog_raw.decode(), "calendars": calendars_raw.decode()}

    def _write_checkpoint(self, header: dict, state: EngineState) -> None:
        partial = self.checkpoint_path.with_suffix(".partial")
        try:
            with open(partial, "wb") as handle:
                data = state_codec.dumps_engine(state)
                handle.write(orjson.dumps({**header, "crc32": _checksum(header, data)}) + b"\n")
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, self.checkpoint_path)
        except OSError:
            if partial.is_file():
                partial.unlink()
            raise

    def _checkpointed(self) -> None:
        self._since_checkpoint = 0
        self._checkpoint_at = time.monotonic()

    def _maybe_checkpoint(self) -> None:
        """Called under the lock after each batch and tick. The periodic checkpoint is written by a
        forked child, a copy-on-write image of this moment: writing every open case under the
        lock stopped ingest and deadline firing for 13 s at 500,000 open cases."""
        self._reap_background_checkpoint()
        options = self.options
        if self._checkpoint_child is None and (self._since_checkpoint >= options.checkpoint_every_events or (
            self._since_checkpoint and time.monotonic() - self._checkpoint_at >= options.checkpoint_every_seconds
        )):
            self._start_background_checkpoint()

    def _start_background_checkpoint(self) -> None:
        header = self._checkpoint_header()
        pid = os.fork()
        if pid == 0:  # the child: only this thread exists; it touches nothing shared and never returns
            status = 1
            try:
                os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # the data-dir lock, SQLite, sockets
                self._write_checkpoint(header, self.engine.state())
                status = 0
            finally:
                os._exit(status)
        self._checkpoint_child = pid
        self._checkpointed()

    def _reap_background_checkpoint(self, wait: bool = False) -> None:
        pid = self._checkpoint_child
        if pid is None:
            return
        try:
            done, status = os.waitpid(pid, 0 if wait else os.WNOHANG)
        except ChildProcessError:  # reaped elsewhere: its outcome is unknown, the next one will tell
            self._checkpoint_child = None
            return
        if done == 0:
            return
        self._checkpoint_child = None
        if os.waitstatus_to_exitcode(status) == 0:
            self.metrics.checkpoint_bytes.set(self.checkpoint_path.stat().st_size)
        else:
            log.error("checkpoint not written (the checkpoint process exited with %s); the next start replays more "
                      "of the journal", os.waitstatus_to_exitcode(status))
            self.metrics.checkpoint_failures.inc()

    def wait_for_checkpoint(self) -> None:
        """Until a checkpoint being written in the background is done (and counted)."""
        with self.lock:
            self._reap_background_checkpoint(wait=True)

    def try_checkpoint(self) -> None:
        """The in-process checkpoint at shutdown and after an import. A checkpoint only shortens
        the next start (the journal has everything), so failing to write one (a full disk) must
        not fail the shutdown: it is logged and counted."""
        try:
            self.checkpoint()
        except OSError as exc:
            log.error("checkpoint not written (%s); the next start replays more of the journal", exc)
            self.metrics.checkpoint_failures.inc()

    # ----- live input -----

    def ingest(self, inputs: Iterable[RawInput]) -> IngestReport:
        """Validate, journal and judge a batch, in one transaction. Raises StoreError when the
        database cannot be written (nothing of the batch is then accepted).

        An event the engine fails on (a bug) must not take the batch, or the journal, with it: the
        batch is rolled back, the engine rebuilt, and the batch run again without that event, which
        goes to the dead letters with the error."""
        inputs = list(inputs)
        poisoned: dict[int, str] = {}
        while True:
            try:
                return self._ingest(inputs, poisoned)
            except _Poisoned as poison:
                log.error("engine failed on input %s (%s); dead-lettered", poison.index, poison.error)
                poisoned[poison.index] = poison.error
                self._rebuild()

    def _ingest(self, inputs: list[RawInput], poisoned: dict[int, str]) -> IngestReport:
        started = time.perf_counter()
        result = IngestReport()
        parsed: list[tuple[int, CloudEvent, RawInput, int]] = []
        letters: list[DeadLetter] = []
        for index, item in enumerate(inputs):
            if index in poisoned:
                reason = f"the engine failed on this event: {poisoned[index]}"
                result.rejected.append(Rejection(index=index, category="engine_error", reason=reason))
                letters.append(DeadLetter.of(item.origin, "engine_error", reason, item.raw))
                continue
            try:
                event, digest = parse_event_with_digest(item.raw)
            except InvalidEvent as invalid:
                result.rejected.append(Rejection(index=index, category=invalid.category, reason=invalid.reason))
                letters.append(DeadLetter.of(item.origin, invalid.category, invalid.reason, item.raw))
                continue
            parsed.append((index, event, item, digest))
        with self.lock:
            now = self.clock.now()
            try:
                with self.store.transaction() as tx:
                    emitted = self.engine.advance(now)
                    unknown_before = self.engine.stats.unknown_items
                    # Source and id identify an event across the log (EVENTS.md): the journal says
                    # whether one came before, in any case, and with what content.
                    known = Store.known_events(tx, [e for _, e, _, _ in parsed])
                    engine_time = 0.0
                    journal: list[tuple] = []
                    received = now.isoformat()
                    clock_seen, clock_text = None, ""
                    counted: Counter = Counter()
                    applied: dict[str, tuple[int, int, tuple[str, str | None]]] = {}
                    for index, event, item, digest in parsed:
                        raw = item.raw
                        first = known.get((event.source, event.id))
                        if first is not None:
                            if first[0] == digest:
                                result.duplicates += 1
                                continue
                            reason = (f"id: {event.id!r} from {event.source!r} was accepted before (case {first[1]}, "
                                      f"journal entry {first[2]}) with other content; this one is not applied")
                            letters.append(DeadLetter.of(item.origin, "conflicting_duplicate", reason, raw))
                            result.rejected.append(Rejection(index=index, category="conflicting_duplicate", reason=reason))
                            continue
                        reason = too_far_ahead("time:", event.time, now, self.options.max_future_skew,
                                               "the monitor's")
                        if reason:
                            letters.append(DeadLetter.of(item.origin, "future_time", reason, raw))
                            result.rejected.append(Rejection(index=index, category="future_time", reason=reason))
                            continue
                        known[(event.source, event.id)] = (digest, event.subject, "in this batch")
                        clock_now = self.engine.now or now
                        if clock_now is not clock_seen:
                            clock_seen, clock_text = clock_now, clock_now.isoformat()
                        journal.append(Store.journal_row(event, raw, digest, clock_text, received))
                        t0 = time.perf_counter()
                        try:
                            caused = self.engine.process(event, item.origin, raw, digest)
                        except Exception as exc:
                            raise _Poisoned(index, f"{type(exc).__name__}: {exc}") from exc
                        engine_time += time.perf_counter() - t0
                        emitted.extend(caused)
                        result.accepted += 1
                        department = self.engine.book.department_of(event)
                        counted[(event.kind, department)] += 1
                        applied[item.origin] = (index, len(journal) - 1, (event.kind, department))
                    # An exemption of a case without a referral is refused when the engine applies it:
                    # at once, unless it is dated at the clock's very instant (then at the next tick).
                    dropped = set()
                    for refused in emitted.refused:
                        if refused.origin in applied:
                            index, row, key = applied[refused.origin]
                            result.rejected.append(Rejection(index=index, category=refused.category, reason=refused.reason))
                            result.accepted -= 1
                            counted[key] -= 1
                            dropped.add(row)
                    Store.journal_events(tx, [row for n, row in enumerate(journal) if n not in dropped])
                    for letter in letters:
                        Store.dead_letter(tx, letter, now)
                    self._store_outputs(tx, emitted, now)
            except StoreError:
                self._rebuild()
                raise
            self._since_checkpoint += result.accepted
            self._maybe_checkpoint()
        if self.options.warn_of_history:
            warning = history_warning([event.time for _, event, _, _ in parsed], now)
            if warning:
                result.warnings.append(warning)
        for (kind, department), count in counted.items():
            self.metrics.event_accepted(kind, department, count)
        for letter in letters:
            self.metrics.dead_letters.labels(letter.category).inc()
        self.metrics.duplicates.inc(result.duplicates)
        self.metrics.unknown_items.inc(self.engine.stats.unknown_items - unknown_before)
        if result.accepted:
            self.metrics.engine_seconds.observe(engine_time / result.accepted)
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self._notify()
        return result

    def dead_letter(self, origin: str, category: str, reason: str, raw: bytes) -> None:
        """Input refused before it could be parsed as events (e.g. a body too large)."""
        now = self.clock.now()
        with self.lock, self.store.transaction() as tx:
            Store.dead_letter(tx, DeadLetter.of(origin, category, reason, raw), now)
        self.metrics.dead_letters.labels(category).inc()

    def tick(self) -> Emitted:
        """Move the engine to the clock's time, firing every deadline that has passed.

        A tick that fires nothing writes nothing: the scheduler ticks after every ingested batch,
        and a commit of the bare clock cost a second fsync per batch. Replay does not need it
        (advancing is the same in one step or many; journal rows carry their own clocks)."""
        with self.lock:
            now = self.clock.now()
            if self.engine.now is not None and now <= self.engine.now:
                return Emitted()
            try:
                emitted = self.engine.advance(now)
                if emitted.alerts or emitted.referrals or emitted.refused:
                    with self.store.transaction() as tx:
                        self._store_outputs(tx, emitted, now)
            except StoreError:
                self._rebuild()
                raise
            self._maybe_checkpoint()
        if emitted.alerts or emitted.referrals:
            self._notify()
        return emitted

    def next_deadline(self) -> datetime | None:
        """When the clock must next move: a deadline, or a referral input waiting for it."""
        with self.lock:
            return self.engine.next_instant()

    def reference(self) -> tuple[Catalog, list[CalendarOverride], RuleSettings]:
        return self.catalog, list(self.calendars), self.settings

    def act(self, action: ActionRecord) -> ActionRecord:
        return self.store.action(action)

    def now(self) -> datetime:
        """The runtime's clock (the real time, or the demo's)."""
        return self.clock.now()

    def ready(self) -> tuple[bool, str]:
        if not self._recovered:
            return False, "rebuilding the engine from the journal"
        return True, "ready"

    def referral_case(self, referral_or_case_id: str) -> str | None:
        """The case id of a referral, if there is one."""
        with self.lock:
            working = self.engine.referrals.find(referral_or_case_id)
            return working.case_id if working else None

    # ----- outputs -----

    def _store_outputs(self, tx, emitted: Emitted, received: datetime) -> None:
        """`emitted_at` is read now, after the engine's work: it is when the record exists."""
        now = self.clock.now() if emitted.alerts or emitted.referrals else received
        Store.outputs(tx, emitted.alerts, emitted.referrals, now)
        for refused in emitted.refused:
            Store.dead_letter(tx, DeadLetter.of(refused.origin, refused.category, refused.reason, refused.raw), now)
            self.metrics.dead_letters.labels(refused.category).inc()
        if self.engine.now is not None:
            Store.set_meta(tx, "clock", self.engine.now.isoformat())
        self.metrics.published(emitted.alerts, emitted.referrals, now, emitted.found_at, self.clock)

    def _notify(self) -> None:
        for listener in list(self.listeners):
            listener()

    def refresh_gauges(self) -> None:
        """Gauges computed on scrape (the warning-window count at most every ten seconds)."""
        metrics = self.metrics
        with self.lock:
            metrics.open_cases.set(self.engine.open_cases)
            metrics.city_waiting.set(self.engine.city.waiting)
            if self.engine.now is not None:
                metrics.clock_seconds.set(self.engine.now.timestamp())
                metrics.clock_behind.set(self.clock.real_seconds(self.clock.now() - self.engine.now))
            stamp, count = self._warning_cache
            if time.monotonic() - stamp > 10:
                count = sum(
                    1 for case in self.engine.cases.values()
                    if case.closure is None and case.alerts
                    and any(a.rule == "PW-002" for a in case.alerts.values())
                )
                self._warning_cache = (time.monotonic(), count)
            metrics.cases_in_warning.set(count)
        metrics.journal_events.set(self.store.count("journal"))
        metrics.store_bytes.set(self.store.size_bytes())
