"""`permitwatch worker`: a faust worker running the two stages (cases, city) on Kafka.

Faust is used for what it does well (consumer groups, partition assignment, changelogged tables
and their recovery) and kept away from what has open bugs: plain tables only (no windowed ones),
at-least-once (no exactly_once), no agents (one task per stage, taking its records in batches
from below faust's streams, `batches`; an agent's `concurrency` above 1 can lose messages,
faust-streaming #606), and no table writes from timers. The timer only writes a tick
to each partition this worker owns; the tick is consumed like an event, so deadlines fire in
order with the partition's events, and a worker that takes over a partition fires what came due
while nobody owned it on its first tick.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import weakref
from datetime import timedelta
from pathlib import Path

import faust
from aiokafka.errors import MessageSizeTooLargeError
from faust.exceptions import ProducerSendError
from faust.streams import _current_event
from faust.types import TP, Message

from permitwatch.models.errors import Misconfigured
from permitwatch.streams.clocks import Clock
from permitwatch.streams.kafka.batches import BatchTransport, DeclaredTableManager, StageFeed, feeds_of
from permitwatch.streams.kafka.gaps import GapGuard
from permitwatch.streams.kafka.local_tables import MAX_AGE_SECONDS, HeldPartitions, discard_stale, partition_dirs
from permitwatch.streams.kafka.reference import ReferenceData
from permitwatch.streams.kafka.stages import CaseStage, CityStage, Stage, Step
from permitwatch.streams.kafka.topology import CITY_TABLE
from permitwatch.streams.kafka.wire import Output, Record, Tick, control_output, record_of
from permitwatch.streams.metrics import Metrics
from permitwatch.streams.settings import Settings

log = logging.getLogger("permitwatch.kafka.worker")

BATCH_RECORDS = 1000
"""About the most records a stage takes in one batch (what its fetches returned while it was
busy with the previous one): one round of acknowledgements for all of them."""


class Worker:
    """The faust app with its topics, tables and stage tasks, around the two stages."""

    def __init__(self, settings: Settings, reference: ReferenceData, clock: Clock,
                 metrics: Metrics | None = None):
        self.settings = settings
        self.reference = reference
        self.clock = clock
        self.metrics = metrics or Metrics("kafka")
        topology = self.topology = settings.topology
        self.app = app = faust.App(
            settings.group,
            broker=[f"kafka://{host}" for host in settings.bootstrap.split(",")],
            store="rocksdb://" if settings.store == "rocksdb" else "memory://",
            datadir=str(settings.state_dir),
            processing_guarantee="at_least_once",
            topic_partitions=settings.partitions,
            topic_replication_factor=settings.replication,
            table_standby_replicas=settings.standby_replicas,
            consumer_auto_offset_reset="earliest",
            # A fetch is a stage's batch (`batches`): bounded, so that one batch does not hold
            # the event loop (ticks, commits, the other stage) for seconds.
            broker_max_poll_records=BATCH_RECORDS,
            producer_acks=-1,
            producer_max_request_size=topology.max_record_bytes,
            web_enabled=False,
            TableManager=DeclaredTableManager,
            # Everything is bytes to faust (tables copy the app's serializers, not a
            # topic's schema); the stages parse with the pydantic models.
            key_serializer="raw",
            value_serializer="raw",
            **{name: value for name, value in (
                ("consumer_group_instance_id", settings.group_instance_id),
                ("producer_max_batch_size", settings.producer_max_batch_size),
                ("broker_session_timeout", settings.session_timeout_seconds),
                ("broker_heartbeat_interval", settings.heartbeat_interval_seconds),
                ("broker_rebalance_timeout", settings.rebalance_timeout_seconds),
            ) if value is not None},
        )
        # Before anything asks the app for its consumer: the stages take their records in
        # batches from below faust's streams (`batches`).
        app.transport = BatchTransport(app.conf.broker_consumer, app)
        n = settings.partitions
        raw = {"key_type": bytes, "value_type": bytes}
        events = app.topic(topology.events, partitions=n, **raw)
        city_work = app.topic(topology.city, partitions=1, **raw)
        cases = app.Table("cases", partitions=n, **raw)
        city = app.Table(CITY_TABLE, partitions=1, extra_topic_configs=topology.city_changelog(settings.group).configs,
                         **raw)
        skew = timedelta(seconds=settings.max_future_skew_seconds)
        self.case_stage = CaseStage(topology, reference, cases, clock, skew, self.metrics)
        self.city_stage = CityStage(topology, reference.settings, city, clock, self.metrics)

        self.gaps = GapGuard(settings.bootstrap, self.metrics.gap_refills)
        for topic in (events, city_work):
            app.topics.add(topic)
        feeds = feeds_of(app, [topology.events, topology.city])
        app.task(self._consume(feeds[topology.events], self.case_stage, self._read_reference))
        app.task(self._consume(feeds[topology.city], self.city_stage))
        app.timer(interval=settings.tick_interval_seconds, name="ticks")(self._tick)
        app.on_partitions_revoked.connect(self._revoked)
        app.on_partitions_assigned.connect(self._assigned)
        self._consumer = None
        """faust's consumer, once the worker has partitions: the scrape reads its high watermarks."""
        for stage, topic in (("cases", topology.events), ("city", topology.city)):
            self.metrics.backlog.labels(stage).set_function(lambda topic=topic: self._backlog(topic))
        if settings.store == "rocksdb":
            self.tables = {topic: table for table, source in ((cases, topology.events), (city, topology.city))
                           for topic in (source, table.changelog_topic.get_topic_name())}
            """Each table by its source topic and its changelog topic."""
            self.local_tables = HeldPartitions((), time.monotonic())
            """Replaced by `serve` with the partitions whose files it kept."""
            app.on_partitions_assigned.connect(self._check_local_tables)

    def _consume(self, feed: StageFeed, stage: Stage, before=None):
        async def consume() -> None:
            while True:
                batch = await feed.take(BATCH_RECORDS)
                try:
                    await self._batch(stage, batch, before)
                except Exception:
                    # The stage's memory is now ahead of its tables. Stop the process: a restart
                    # (or another worker) resumes from the committed offsets and the tables,
                    # which is the recovery every kill -9 already goes through.
                    log.critical("could not complete a batch of %s records from %s; stopping the worker",
                                 len(batch), batch[0].tp, exc_info=True)
                    os._exit(70)
                feed.done(batch)
        return consume

    async def _batch(self, stage: Stage, batch: list[Message], before) -> None:
        """Every record of the batch through its stage (writes held in the overlay), every output
        produced and acknowledged, then the table writes (`stages`)."""
        steps: list[Step] = []
        last_message: dict[int, Message] = {}
        records = [record_of(message) for message in batch]
        stage.prepare(records)
        for message, record in zip(batch, records, strict=True):
            last_message[record.partition] = message
            needed = stage.next_offset(record.partition)
            if record.offset > needed:
                async for skipped in self.gaps.missing(record.topic, record.partition, record.offset, needed):
                    steps.append(await self._step(stage, record_of(skipped), before))
            steps.append(await self._step(stage, record, before))
        await self.produce([out for step in steps for out in step.outputs])
        # The table writes go, as records produced here with the outputs' producer, to the
        # table's changelog, and once the broker has them, to the table's store: faust's own
        # path (`table[key] = value`) queues each in a buffer that one task sends record by
        # record, which trailed thousands of records behind a busy stage. In this order the local
        # store never holds what its changelog lacks, so a RocksDB store survives a kill -9: its
        # persisted changelog offset, set after the writes, says where a restore resumes (a
        # kill between the writes and the offset only makes the restore read some again). The
        # overlay is empty once `commit` returns; nothing reads the table before this batch ends.
        table = stage.table.base
        changelog = table.changelog_topic.get_topic_name()
        writes: list[Output] = []
        stage.commit(steps, lambda partition, key, value: writes.append(Output(changelog, key, value, partition)))
        acknowledged = await self.produce(writes)
        self._write_store(table.data, writes, acknowledged, last_message)

    def _write_store(self, store, writes: list[Output], acknowledged: list, last_message: dict[int, Message]) -> None:
        """The acknowledged changelog `writes` into the table's `store`, then each partition's
        persisted changelog offset (kept by RocksDB, ignored by the memory store)."""
        # faust's RocksDB store writes an entry to the partition store of the current event,
        # which only faust's streams set.
        current = {partition: self.app.create_event(message.key, message.value, message.headers, message)
                   for partition, message in last_message.items()}
        through: dict[int, int] = {}
        for write, metadata in zip(writes, acknowledged, strict=True):
            token = _current_event.set(weakref.ref(current[write.partition]))
            try:
                if write.value is not None:
                    store[write.key] = write.value
                elif write.key in store:
                    del store[write.key]
            finally:
                _current_event.reset(token)
            through[write.partition] = max(through.get(write.partition, -1), metadata.offset)
        for partition, offset in through.items():
            store.set_persisted_offset(TP(writes[0].topic, partition), offset)

    @staticmethod
    async def _step(stage: Stage, record: Record, before) -> Step:
        if before is not None:
            await before(record)
        return stage.handle(record)

    async def _read_reference(self, record: Record) -> None:
        wanted = self.case_stage.reference_wanted(record)
        if wanted is not None:
            await self.reference.read(self.settings.bootstrap, wanted)

    async def produce(self, outputs: list[Output]) -> list:
        """Send all `outputs`, then await their acknowledgements together: their record
        metadata, in order."""
        producer = self.app.producer
        limit = self.topology.max_record_bytes
        pending = []
        for out in outputs:
            try:
                pending.append(await producer.send(out.topic, out.key, out.value, out.partition, None,
                                                   list(out.headers) or None))
            except ProducerSendError as refused:  # faust's wrapping of aiokafka's own errors
                if isinstance(refused.__cause__, MessageSizeTooLargeError):
                    raise RecordTooLarge(out, f"over PERMITWATCH_MAX_RECORD_BYTES={limit:,}, the workers' producer "
                                              "limit: raise it on every worker") from None
                raise
        acknowledged = []
        for out, delivery in zip(outputs, pending, strict=True):
            try:
                acknowledged.append(await delivery)
            except MessageSizeTooLargeError:
                raise RecordTooLarge(out, "refused by the broker, over the topic's max.message.bytes (1 MB unless "
                                          "set): raise it with kafka-configs") from None
        return acknowledged

    async def _tick(self) -> None:
        now = self.clock.now()
        await self.produce([control_output(self.topology.events, partition, Tick(now))
                            for partition in self._judged_partitions()])

    def _judged_partitions(self) -> list[int]:
        """The events partitions this worker judges (its active ones)."""
        return sorted(tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == self.topology.events)

    async def _check_local_tables(self, sender, assigned, **kwargs) -> None:
        """Stop if a table partition comes back whose files went untouched for longer than the
        changelog keeps deletions (`local_tables`); else log how far the files of each active one
        go: faust has just read the same offsets, and restores only the changelog after them."""
        held = {(self.tables[tp.topic].name, tp.partition) for tp in assigned if tp.topic in self.tables}
        stale = self.local_tables.assign(held, time.monotonic())
        if stale:
            dirs = partition_dirs(Path(self.app.conf.tabledir))
            for key in stale:
                if key in dirs:
                    shutil.rmtree(dirs[key], ignore_errors=True)
            log.critical("got back %s, whose local table files this worker let go of more than %.0f hours ago "
                         "(the changelog may have dropped deletions since): deleted them; stopping so that the "
                         "restart restores them from the changelog alone",
                         ", ".join(f"{table} {partition}" for table, partition in stale), MAX_AGE_SECONDS / 3600)
            os._exit(70)
        active = set(self.app.assignor.assigned_actives())
        found = []
        for tp in sorted(tp for tp in assigned if tp in active and tp.topic in (self.topology.events,
                                                                               self.topology.city)):
            table = self.tables[tp.topic]
            offset = table.persisted_offset(TP(table.changelog_topic.get_topic_name(), tp.partition))
            found.append(f"{table.name} {tp.partition} " + ("none" if offset is None else f"through {offset}"))
        if found:
            log.info("local table files (changelog offsets; the restore reads what follows): %s", ", ".join(found))

    async def _assigned(self, sender, assigned, **kwargs) -> None:
        self._consumer = self.app.consumer
        self.case_stage.assigned(self._judged_partitions())

    def _backlog(self, topic: str) -> float:
        """Records of `topic`'s partitions this worker judges after the last its stage judged, read
        in Prometheus's thread: the consumer's high watermarks (as of its last fetch) against a
        snapshot of the stage's offsets. A partition not judged since its assignment (restoring)
        is not counted, nor is one nobody owns (its worker dead, the session not yet timed out):
        the group's lag shows those."""
        stage = self.case_stage if topic == self.topology.events else self.city_stage
        consumer, applied = self._consumer, dict(stage.applied)
        if consumer is None:
            return 0.0
        waiting = 0
        # `assigned_actives` makes a new set, of an assignment a rebalance replaces, not changes.
        for tp in [tp for tp in self.app.assignor.assigned_actives() if tp.topic == topic]:
            last = applied.get(tp.partition)
            try:
                highwater = consumer.highwater(tp)
            except Exception:  # no longer assigned to the consumer, or not fetched yet
                continue
            if last is not None and highwater is not None:
                waiting += max(0, highwater - last - 1)
        return float(waiting)

    async def _revoked(self, sender, revoked, **kwargs) -> None:
        stages = {self.topology.events: self.case_stage, self.topology.city: self.city_stage}
        for tp in revoked:
            if tp.topic in stages:
                stages[tp.topic].reset(tp.partition)


class RecordTooLarge(Misconfigured):
    """A record refused for its size. The worker stops (status 70) and stops again after every
    restart, until the limit is raised: it cannot go on without the record."""

    def __init__(self, out: Output, why: str):
        super().__init__(f"a record of {len(out.key or b'') + len(out.value or b''):,} bytes for {out.topic} (key "
                         f"{(out.key or b'').decode(errors='replace')}) is {why} (docs/kafka.md, Known problems)")


class WorkerSetupError(Misconfigured):
    """The worker cannot start as configured; the message says why and what to do."""


def serve(worker: Worker) -> None:
    """Run the worker until stopped (SIGTERM, ^C), with its metrics served."""
    from prometheus_client import start_http_server

    settings = worker.settings
    if settings.store == "rocksdb":
        worker.local_tables = HeldPartitions(discard_stale(Path(worker.app.conf.tabledir), time.time()),
                                             time.monotonic())
    if settings.metrics_port:
        try:
            start_http_server(settings.metrics_port, settings.metrics_host, registry=worker.metrics.registry)
        except OSError as exc:
            raise WorkerSetupError(f"metrics cannot listen on {settings.metrics_host}:{settings.metrics_port} "
                                   f"({exc.strerror}): every worker on a host needs its own --metrics-port "
                                   "(0: none)") from None
    # mode's timers note at INFO every wake-up a second late, which a batch of a thousand events
    # causes by design: after a restart they were hundreds of lines around the worker's own.
    if settings.log_level.upper() != "DEBUG":
        logging.getLogger("mode.timers").setLevel(logging.WARNING)
    faust.Worker(worker.app, loglevel=settings.log_level, redirect_stdouts=False).execute_from_commandline()
