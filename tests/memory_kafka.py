"""The Kafka runtime's stages on an in-memory cluster: batches taken from partitions in a random
order, as the worker takes them, and workers killed at random points of a batch (before, during
or after producing its records, with none, some or all of its table writes made durable) and
restarted from the last committed offsets. What the broker tests cannot do a thousand times a
second."""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson

from permitwatch.alerts.clock import WorkingCalendar
from permitwatch.alerts.engine import CaseJudge
from permitwatch.models.catalog import Catalog
from permitwatch.models.events import CloudEvent
from permitwatch.models.settings import RuleSettings
from permitwatch.streams.clocks import ManualClock
from permitwatch.streams.kafka.reference import ReferenceData
from permitwatch.streams.kafka.stages import CaseStage, CityStage, Step
from permitwatch.streams.kafka.topology import Topology
from permitwatch.streams.kafka.wire import Output, Record, Tick, control_output
from permitwatch.streams.metrics import Metrics

CALENDAR = WorkingCalendar()
"""The built-in calendar, built once: it is immutable (its caches are of pure functions), and
building it takes 0.1 s, which every simulated restart paid again (half the crash tests' time)."""


@dataclass
class Crashes:
    rate: float = 0.0
    """Chance that a step is cut short by a kill -9."""
    commit_every: int = 5
    """Offsets are committed after about this many batches (faust commits periodically)."""
    batch: int = 6
    """The most records a batch takes (from one or several partitions of a topic)."""
    crashes: int = 0


@dataclass
class MemoryCluster:
    topology: Topology
    catalog: Catalog
    now: datetime
    seed: int = 0
    crashes: Crashes = field(default_factory=Crashes)
    settings: RuleSettings = field(default_factory=RuleSettings)
    redo_limit: int | None = None
    """Both stages' `redo_limit` (their changelogs' record size) instead of their own."""

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.logs: dict[tuple[str, int], list[Record]] = {}
        self.position: dict[tuple[str, int], int] = {}
        self.committed: dict[tuple[str, int], int] = {}
        self.tables: dict[str, dict[bytes, bytes]] = {name: {} for name in ("cases", "city")}
        self.durable = {name: {} for name in self.tables}
        """The tables as their changelogs hold them: writes reach them in order, all of them by
        the time offsets are committed (faust flushes the producer before committing)."""
        self.unflushed: list[tuple[str, bytes, bytes | None]] = []
        self.clock = ManualClock(self.now)
        self.metrics = Metrics("memory")
        self._start_worker()

    def _start_worker(self) -> None:
        """A fresh worker: nothing in memory, the tables as the changelog has them."""
        entries = self.catalog.by_code()
        # The judge `ReferenceData.judge()` builds (a new one, as a restarted process has), on the
        # shared calendar.
        reference = ReferenceData(self.topology, self.settings, entries=entries,
                                  _judge=CaseJudge(entries, CALENDAR, self.settings))
        t = self.tables
        self.stages = {
            self.topology.events: CaseStage(self.topology, reference, t["cases"], self.clock, timedelta(minutes=5),
                                            self.metrics),
            self.topology.city: CityStage(self.topology, self.settings, t["city"], self.clock,
                                              self.metrics),
        }
        if self.redo_limit is not None:
            for stage in self.stages.values():
                stage.redo_limit = self.redo_limit

    def partitions(self, topic: str) -> int:
        return 1 if topic in (self.topology.city, self.topology.catalog, self.topology.calendar) \
            else self.topology.partitions

    def produce(self, out: Output) -> None:
        partition = out.partition
        if partition is None:
            partition = zlib.crc32(out.key or b"") % self.partitions(out.topic)
        log = self.logs.setdefault((out.topic, partition), [])
        log.append(Record(out.topic, partition, len(log), out.key, out.value, out.headers))

    def send_events(self, events: list[CloudEvent]) -> None:
        for event in events:
            self.produce(Output(self.topology.events, event.subject.encode(),
                                orjson.dumps(event.model_dump(mode="json"))))

    def send_raw(self, key: bytes, value: bytes) -> None:
        self.produce(Output(self.topology.events, key, value))

    def tick(self, at: datetime) -> None:
        """Every partition's worker writes a tick (its clock reached `at`)."""
        self.clock.set(max(self.clock.now(), at))
        for partition in range(self.topology.partitions):
            self.produce(control_output(self.topology.events, partition, Tick(at)))

    def records(self, topic: str) -> list[Record]:
        return [r for (name, _), log in sorted(self.logs.items()) if name == topic for r in log]

    # ----- consuming -----

    def run(self, limit: int = 1_000_000) -> None:
        """Consume until every input partition is read to its end."""
        for _ in range(limit):
            ready = [tp for tp, log in self.logs.items() if tp[0] in self.stages and self.position.get(tp, 0) < len(log)]
            if not ready:
                return
            topic = self.rng.choice(sorted({tp[0] for tp in ready}))
            self._consume(topic, self._batch(topic))
        raise AssertionError("the cluster did not settle")

    def _batch(self, topic: str) -> list[Record]:
        """Up to `Crashes.batch` records of `topic`, each the next of a random partition."""
        taken: dict[tuple[str, int], int] = {}
        records = []
        for _ in range(self.rng.randint(1, self.crashes.batch)):
            ready = [tp for tp, log in self.logs.items()
                     if tp[0] == topic and self.position.get(tp, 0) + taken.get(tp, 0) < len(log)]
            if not ready:
                break
            tp = self.rng.choice(sorted(ready))
            records.append(self.logs[tp][self.position.get(tp, 0) + taken.get(tp, 0)])
            taken[tp] = taken.get(tp, 0) + 1
        return records

    def _consume(self, topic: str, records: list[Record]) -> None:
        stage = self.stages[topic]
        stage.prepare(records)
        steps: list[Step] = [stage.handle(record) for record in records]
        outputs = [out for step in steps for out in step.outputs]
        if self.crashes.rate and self.rng.random() < self.crashes.rate:
            self._crash(topic, steps, outputs)
            return
        for out in outputs:
            self.produce(out)
        stage.commit(steps, self._writer(topic))
        for record in records:
            self.position[(topic, record.partition)] = record.offset + 1
        if self.rng.random() < 1 / self.crashes.commit_every:
            self._flush()
            self.committed = dict(self.position)

    def _crash(self, topic: str, steps: list[Step], outputs: list[Output]) -> None:
        """kill -9 during a batch: some of its records reached the broker, and only once all of
        them did were its table writes made; of the writes not yet flushed, a prefix survives."""
        produced = self.rng.randint(0, len(outputs))
        for out in outputs[:produced]:
            self.produce(out)
        if produced == len(outputs):
            self.stages[topic].commit(steps, self._writer(topic))
        del self.unflushed[self.rng.randint(0, len(self.unflushed)):]
        self._flush()
        self.tables = {name: dict(table) for name, table in self.durable.items()}
        self.position = dict(self.committed)
        self.crashes.crashes += 1
        self._start_worker()

    def _writer(self, topic: str):
        name = "cases" if topic == self.topology.events else "city"

        def put(partition: int, key: bytes, value: bytes | None) -> None:
            self.unflushed.append((name, key, value))
            _put(self.tables[name], key, value)
        return put

    def _flush(self) -> None:
        for name, key, value in self.unflushed:
            _put(self.durable[name], key, value)
        self.unflushed = []


def _put(table: dict, key: bytes, value: bytes | None) -> None:
    if value is None:
        table.pop(key, None)
    else:
        table[key] = value
