"""The embedded monitor's one SQLite file (WAL): the journal of accepted input, the outputs, the
operators' actions and the dead letters.

The journal holds inputs only (events, and reference-data changes), each with the engine clock at
which it was applied. Replaying it from a checkpoint reproduces the engine exactly, so outputs are
written once, in the same transaction as the inputs that caused them, and never again.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson

from permitwatch.models.alerts import Alert
from permitwatch.models.common import record_bytes
from permitwatch.models.deadletter import DeadLetter
from permitwatch.models.errors import Unavailable
from permitwatch.models.events import CloudEvent, content_digest, parse_event
from permitwatch.models.referrals import Referral
from permitwatch.models.views import ActionRecord

log = logging.getLogger("permitwatch.store")

SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    event_id TEXT,
    case_id TEXT,
    type TEXT,
    time TEXT,
    clock TEXT NOT NULL,
    received_at TEXT NOT NULL,
    raw BLOB NOT NULL,
    source TEXT,
    digest INTEGER,
    UNIQUE (source, event_id)
);
CREATE INDEX IF NOT EXISTS journal_case ON journal(case_id, seq);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY,
    received_at TEXT NOT NULL,
    origin TEXT NOT NULL,
    category TEXT NOT NULL,
    reason TEXT NOT NULL,
    raw BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    seq INTEGER PRIMARY KEY,
    alert_id TEXT NOT NULL,
    status TEXT NOT NULL,
    rule TEXT NOT NULL,
    signal TEXT NOT NULL,
    case_id TEXT NOT NULL,
    department TEXT,
    item_code TEXT,
    handler TEXT,
    reviewer TEXT,
    approver TEXT,
    detected_at TEXT NOT NULL,
    emitted_at TEXT NOT NULL,
    record BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_id ON alerts(alert_id, seq);
CREATE INDEX IF NOT EXISTS alerts_case ON alerts(case_id, seq);
CREATE INDEX IF NOT EXISTS alerts_rule ON alerts(rule, seq);
CREATE TABLE IF NOT EXISTS referrals (
    seq INTEGER PRIMARY KEY,
    referral_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    case_id TEXT NOT NULL,
    status TEXT NOT NULL,
    department TEXT,
    emitted_at TEXT NOT NULL,
    record BLOB NOT NULL,
    UNIQUE (referral_id, version)
);
CREATE INDEX IF NOT EXISTS referrals_case ON referrals(case_id);
CREATE TABLE IF NOT EXISTS actions (
    seq INTEGER PRIMARY KEY,
    target_kind TEXT NOT NULL,
    target_id TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    at TEXT NOT NULL,
    reason TEXT,
    assignee TEXT
);
CREATE INDEX IF NOT EXISTS actions_target ON actions(target_kind, target_id, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (source TEXT PRIMARY KEY);
"""


@dataclass(frozen=True, slots=True)
class JournalRow:
    seq: int
    kind: str
    clock: datetime
    raw: bytes
    digest: int | None
    """An event's `content_digest` as journalled (None for a reference row)."""


def _identify_events_by_source(connection: sqlite3.Connection) -> None:
    """A journal from before 2026-11-30 keyed events by id alone; CloudEvents key them by source and
    id (EVENTS.md). Rebuild it with both and the content digest duplicates are told apart by,
    keeping every row and its seq (checkpoints refer to it)."""
    columns = [row[1] for row in connection.execute("PRAGMA table_info(journal)")]
    if not columns or "source" in columns:
        return
    rows = connection.execute("SELECT seq, kind, event_id, case_id, type, time, clock, received_at, raw FROM journal")
    migrated = []
    for seq, kind, event_id, case_id, type_, time, clock, received_at, raw in rows:
        source = digest = None
        if kind == "event":
            try:
                source, digest = orjson.loads(raw).get("source"), content_digest(raw)
            except ValueError:  # NaN, which journals of then took: kept as accepted, its bytes its content
                source, digest = parse_event(raw).source, zlib.crc32(raw)
        migrated.append((seq, kind, event_id, case_id, type_, time, clock, received_at, raw, source, digest))
    connection.execute("BEGIN IMMEDIATE")
    connection.execute("ALTER TABLE journal RENAME TO journal_by_id")
    connection.execute("DROP INDEX IF EXISTS journal_case")
    connection.execute(SCHEMA.split(";", 1)[0])  # the journal's CREATE TABLE
    connection.executemany("INSERT INTO journal (seq, kind, event_id, case_id, type, time, clock, received_at, raw, "
                           "source, digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", migrated)
    connection.execute("DROP TABLE journal_by_id")
    connection.execute("COMMIT")
    log.info("journal migrated: events are identified by source and id (%s rows)", len(migrated))


PROBE_BYTES = 1 << 20
"""Room a database that failed a write must show again to be reported writable: about one batch of
2,000 events with what they cause."""


class StoreError(Unavailable):
    """The database cannot be written (disk full, read-only, locked): the batch was not accepted."""


class Store:
    """One writer connection (callers hold `write_lock`), and a read connection per thread."""

    def __init__(self, path: Path, synchronous: str = "FULL"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.synchronous = synchronous
        self.write_lock = threading.RLock()
        self._local = threading.local()
        self._failure: str | None = None
        try:
            self._writer = self._connect()
            _identify_events_by_source(self._writer)
            self._writer.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"database {self.path} cannot be opened for writing: {exc}") from None

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA synchronous={self.synchronous}")
        connection.execute("PRAGMA foreign_keys=ON")
        return connection

    @property
    def reader(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = self._connect()
            connection.execute("PRAGMA query_only=ON")
        return connection

    def close(self) -> None:
        self._writer.close()

    # ----- writing (under write_lock) -----

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit: inputs, the outputs they caused and the new clock, or nothing."""
        connection = self._writer
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(f"database {self.path} cannot be written: {exc}") from exc
        try:
            yield connection
            connection.execute("COMMIT")
            self._failure = None
        except sqlite3.Error as exc:
            self._roll_back()
            self._failure = f"database {self.path} cannot be written: {exc}"
            raise StoreError(self._failure) from exc
        except BaseException:
            self._roll_back()
            raise

    def _roll_back(self) -> None:
        # SQLite has already rolled the transaction back after some errors (SQLITE_FULL,
        # SQLITE_IOERR); a second ROLLBACK would raise over the error that matters.
        if self._writer.in_transaction:
            self._writer.execute("ROLLBACK")

    @staticmethod
    def known_events(connection: sqlite3.Connection, events: list[CloudEvent]) -> dict[tuple[str, str], tuple]:
        """(source, id) → (content digest, case id, seq) of the journalled events among `events`."""
        known: dict[tuple[str, str], tuple] = {}
        by_source: dict[str, set[str]] = {}
        for event in events:
            by_source.setdefault(event.source, set()).add(event.id)
        # By source, then id: the order of the journal's unique index, which a lookup by id alone
        # cannot use (it scanned the whole journal, once per event in the Kafka read model).
        for source, id_set in by_source.items():
            ids = sorted(id_set)
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for event_id, digest, case_id, seq in connection.execute(
                        f"SELECT event_id, digest, case_id, seq FROM journal WHERE source = ? AND event_id IN ({marks})",
                        [source, *chunk]):
                    known[(source, event_id)] = (digest, case_id, seq)
        return known

    @staticmethod
    def journal_row(event: CloudEvent, raw: bytes, digest: int, clock: str, received_at: str) -> tuple:
        return (event.id, event.source, digest, event.subject, event.type, event.time.isoformat(), clock, received_at,
                raw)

    @staticmethod
    def journal_events(connection: sqlite3.Connection, rows: list[tuple]) -> None:
        """Rows from `journal_row`, in the order the engine applied them."""
        connection.executemany(
            "INSERT INTO journal (kind, event_id, source, digest, case_id, type, time, clock, received_at, raw)"
            " VALUES ('event', ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    @staticmethod
    def first_delivery(connection: sqlite3.Connection, source: str) -> bool:
        """Whether a Kafka output made from `source` (its SOURCE_HEADER) is new: a worker that
        redoes a record after a restart produces the same outputs again, with the same source."""
        return connection.execute("INSERT OR IGNORE INTO deliveries (source) VALUES (?)", (source,)).rowcount == 1

    @staticmethod
    def journal_reference(connection: sqlite3.Connection, kind: str, raw: bytes, clock: datetime,
                          received_at: datetime) -> int:
        cursor = connection.execute(
            "INSERT INTO journal (kind, clock, received_at, raw) VALUES (?, ?, ?, ?)",
            (kind, clock.isoformat(), received_at.isoformat(), raw),
        )
        return cursor.lastrowid

    @staticmethod
    def dead_letter(connection: sqlite3.Connection, letter: DeadLetter, received_at: datetime) -> None:
        connection.execute(
            "INSERT INTO dead_letters (received_at, origin, category, reason, raw) VALUES (?, ?, ?, ?, ?)",
            (received_at.isoformat(), letter.origin, letter.category, letter.reason, letter.original()),
        )

    @staticmethod
    def outputs(connection: sqlite3.Connection, alerts: Iterable[Alert], referrals: Iterable[Referral],
                emitted_at: datetime) -> None:
        stamp = emitted_at.isoformat()
        connection.executemany(
            "INSERT INTO alerts (alert_id, status, rule, signal, case_id, department, item_code, handler, reviewer,"
            " approver, detected_at, emitted_at, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(a.alert_id, a.status, a.rule, a.signal, a.case_id, a.department, a.item_code, a.officers.handler,
              a.officers.reviewer, a.officers.approver, a.detected_at.isoformat(), stamp,
              record_bytes(a)) for a in alerts],
        )
        connection.executemany(
            "INSERT INTO referrals (referral_id, version, case_id, status, department, emitted_at, record)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(r.referral_id, r.version, r.case_id, r.status, r.department, stamp,
              record_bytes(r)) for r in referrals],
        )

    @staticmethod
    def set_meta(connection: sqlite3.Connection, key: str, value: str) -> None:
        connection.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = ?",
                           (key, value, value))

    def action(self, action: ActionRecord) -> ActionRecord:
        """Record an operator's action under the next number of the audit trail (its `seq` is
        ignored); the result carries that number."""
        with self.write_lock, self.transaction() as connection:
            seq = Store.insert_action(connection, action, None)
        return action.model_copy(update={"seq": seq})

    @staticmethod
    def insert_action(connection: sqlite3.Connection, action: ActionRecord, seq: int | None) -> int:
        """`seq` None: the next number. A given one (an action read from the Kafka actions topic,
        numbered there) is stored once, however often it is read."""
        return connection.execute(
            "INSERT OR IGNORE INTO actions (seq, target_kind, target_id, action, actor, at, reason, assignee)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, action.target_kind, action.target_id, action.action, action.actor, action.at.isoformat(),
             action.reason, action.assignee),
        ).lastrowid

    def has_action(self, seq: int) -> bool:
        return self.reader.execute("SELECT 1 FROM actions WHERE seq = ?", (seq,)).fetchone() is not None

    def actions(self, target: tuple[str, str] | None = None) -> list[ActionRecord]:
        """The audit trail in order: of one (target kind, target id), or all of it."""
        query = "SELECT seq, target_kind, target_id, action, actor, at, reason, assignee FROM actions"
        rows = self.reader.execute(query + " WHERE target_kind = ? AND target_id = ? ORDER BY seq", target
                                   ) if target else self.reader.execute(query + " ORDER BY seq")
        return [ActionRecord(seq=r[0], target_kind=r[1], target_id=r[2], action=r[3], actor=r[4],
                             at=datetime.fromisoformat(r[5]), reason=r[6], assignee=r[7]) for r in rows]

    def writable(self) -> tuple[bool, str]:
        """Whether the database can be written now. Starting a write transaction finds permissions
        and locks; a full disk shows only when data is written, so after a failed write this
        writes a probe of `PROBE_BYTES` (and empties it), and reports writable again once that fits."""
        with self.write_lock:
            try:
                if self._failure is None:
                    self._writer.execute("BEGIN IMMEDIATE")
                    self._writer.execute("ROLLBACK")
                else:
                    for value in ("x" * PROBE_BYTES, ""):
                        with self.transaction() as tx:
                            Store.set_meta(tx, "write_probe", value)
            except StoreError:
                return False, self._failure or "database cannot be written"
            except sqlite3.Error as exc:
                return False, f"database {self.path} cannot be written: {exc}"
        return True, "writable"

    # ----- reading -----

    def meta(self, key: str) -> str | None:
        row = self.reader.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def journal_after(self, seq: int) -> Iterator[JournalRow]:
        cursor = self.reader.execute("SELECT seq, kind, clock, raw, digest FROM journal WHERE seq > ? ORDER BY seq",
                                     (seq,))
        for seq_, kind, clock, raw, digest in cursor:
            yield JournalRow(seq_, kind, datetime.fromisoformat(clock), raw, digest)

    def referral_case(self, referral_or_case_id: str) -> str | None:
        """The case id of a stored referral, by referral id or case id."""
        row = self.reader.execute("SELECT case_id FROM referrals WHERE referral_id = ? OR case_id = ? LIMIT 1",
                                  (referral_or_case_id, referral_or_case_id)).fetchone()
        return row[0] if row else None

    def last_journal_seq(self) -> int:
        return self.reader.execute("SELECT COALESCE(MAX(seq), 0) FROM journal").fetchone()[0]

    def count(self, table: str) -> int:
        if table not in ("journal", "alerts", "referrals", "dead_letters", "actions"):
            raise ValueError(table)
        return self.reader.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in (self.path, self.path.with_name(self.path.name + "-wal"))
                   if p.exists())
