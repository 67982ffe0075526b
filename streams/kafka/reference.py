"""Reference data on Kafka: the catalog (one record per item, keyed by item code) and the calendar
overrides (keyed by version), both on compacted one-partition topics.

Publishing writes what changed and then a `reference` control record to every partition of the
events topic, carrying the topics' end offsets. Each partition re-judges its cases when that
record reaches it, so the change is ordered with the partition's events on every worker.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from permitwatch.alerts.clock import WorkingCalendar
from permitwatch.alerts.engine import CaseJudge
from permitwatch.models.calendar import CalendarOverride
from permitwatch.models.catalog import Catalog, CatalogEntry
from permitwatch.models.settings import RuleSettings
from permitwatch.streams.kafka.topology import Topology
from permitwatch.streams.kafka.wire import ReferenceChanged, control_output

log = logging.getLogger("permitwatch.kafka.reference")

READ_TIMEOUT_SECONDS = 60


@dataclass
class ReferenceData:
    """The catalog and calendars as read from the topics, up to `positions` (next offsets)."""

    topology: Topology
    settings: RuleSettings
    entries: dict[str, CatalogEntry] = field(default_factory=dict)
    calendars: dict[str, CalendarOverride] = field(default_factory=dict)
    catalog_position: int = 0
    calendar_position: int = 0
    _judge: CaseJudge | None = None

    @property
    def catalog(self) -> Catalog:
        return Catalog(version=f"{self.topology.catalog}@{self.catalog_position}",
                       items=[self.entries[code] for code in sorted(self.entries)])

    def judge(self) -> CaseJudge:
        """The judge for the data read so far (rebuilt only after a change)."""
        if self._judge is None:
            self._judge = CaseJudge(self.entries, WorkingCalendar.of(list(self.calendars.values())), self.settings)
        return self._judge

    def covers(self, change: ReferenceChanged) -> bool:
        return self.catalog_position >= change.catalog_end and self.calendar_position >= change.calendar_end

    async def read(self, bootstrap: str, until: ReferenceChanged | None = None) -> None:
        """Read on from the current positions to `until`'s offsets, or to the topics' ends."""
        topology = self.topology
        catalog_tp, calendar_tp = TopicPartition(topology.catalog, 0), TopicPartition(topology.calendar, 0)
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                    client_id="permitwatch-reference")
        await consumer.start()
        try:
            consumer.assign([catalog_tp, calendar_tp])
            if until is None:
                ends = await consumer.end_offsets([catalog_tp, calendar_tp])
                targets = {catalog_tp: ends[catalog_tp], calendar_tp: ends[calendar_tp]}
            else:
                targets = {catalog_tp: until.catalog_end, calendar_tp: until.calendar_end}
            consumer.seek(catalog_tp, self.catalog_position)
            consumer.seek(calendar_tp, self.calendar_position)
            changed = False
            stalled_since = time.monotonic()
            while self.catalog_position < targets[catalog_tp] or self.calendar_position < targets[calendar_tp]:
                batches = await consumer.getmany(catalog_tp, calendar_tp, timeout_ms=1000)
                for tp, records in batches.items():
                    for record in records:
                        if record.offset < targets[tp]:
                            changed = True
                            self._apply(tp.topic, record.key, record.value, f"{tp.topic}/0/{record.offset}")
                if batches:
                    stalled_since = time.monotonic()
                elif time.monotonic() - stalled_since > READ_TIMEOUT_SECONDS:
                    raise TimeoutError(f"reference topics not readable up to {targets} within "
                                       f"{READ_TIMEOUT_SECONDS} s")
                # Compaction leaves gaps in the offsets: the position is where the consumer stands.
                self.catalog_position = min(await consumer.position(catalog_tp), targets[catalog_tp])
                self.calendar_position = min(await consumer.position(calendar_tp), targets[calendar_tp])
            if changed:
                self._judge = None
        finally:
            await consumer.stop()

    def _apply(self, topic: str, key: bytes | None, value: bytes | None, origin: str) -> None:
        name = (key or b"").decode("utf-8", errors="replace")
        try:
            if topic == self.topology.catalog:
                if value is None:
                    self.entries.pop(name, None)
                else:
                    entry = CatalogEntry.model_validate_json(value)
                    self.entries[entry.item_code] = entry
            elif value is None:
                self.calendars.pop(name, None)
            else:
                override = CalendarOverride.model_validate_json(value)
                self.calendars[override.version] = override
        except ValueError as exc:
            # Only the publisher below writes these topics, and it validates: a bad record was written
            # by something else. Skipping it keeps the rest of the reference data in force.
            log.error("reference record %s is not valid and was skipped: %s", origin, exc)


@dataclass
class Published:
    changed_items: int
    removed_items: int
    calendars: int
    control: ReferenceChanged | None


async def publish_reference(bootstrap: str, topology: Topology, catalog: Catalog | None,
                            calendars: list[CalendarOverride], producer_options: dict | None = None) -> Published:
    """Make `catalog` (when given, it replaces the whole catalog) and `calendars` (added or
    replaced by version) the reference data, and tell every partition."""
    current = ReferenceData(topology, RuleSettings())
    await current.read(bootstrap)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", client_id="permitwatch-reference",
                                enable_idempotence=False, **(producer_options or {}))
    await producer.start()
    try:
        pending = []
        changed = removed = 0
        if catalog is not None:
            wanted = {entry.item_code: entry for entry in catalog.items}
            for code, entry in wanted.items():
                if current.entries.get(code) != entry:
                    changed += 1
                    pending.append(await producer.send(topology.catalog, entry.model_dump_json().encode(),
                                                       key=code.encode()))
            for code in current.entries.keys() - wanted.keys():
                removed += 1
                pending.append(await producer.send(topology.catalog, None, key=code.encode()))
        new_calendars = [c for c in calendars if current.calendars.get(c.version) != c]
        for override in new_calendars:
            pending.append(await producer.send(topology.calendar, override.model_dump_json().encode(),
                                               key=override.version.encode()))
        for future in pending:
            await future
        control = None
        if pending:
            ends = await _end_offsets(bootstrap, [topology.catalog, topology.calendar])
            kinds = tuple(kind for kind, touched in (("catalog", changed or removed), ("calendar", new_calendars))
                          if touched)
            control = ReferenceChanged(ends[topology.catalog], ends[topology.calendar], kinds)
            partitions = await producer.partitions_for(topology.events)
            for partition in sorted(partitions):
                out = control_output(topology.events, partition, control)
                await (await producer.send(out.topic, out.value, partition=out.partition, headers=list(out.headers)))
        return Published(changed, removed, len(new_calendars), control)
    finally:
        await producer.stop()


async def _end_offsets(bootstrap: str, topics: list[str]) -> dict[str, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, 0) for topic in topics])
        return {tp.topic: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()
