"""`permitwatch worker`: a faust worker running the two stages (cases, city) on Kafka.

Faust is used for what it does well (consumer groups, partition assignment, changelogged tables
and their recovery) and kept away from what has open bugs: plain tables only (no windowed ones),
at-least-once (no exactly_once), one consumer task per agent (`concurrency=1`; more can lose
messages, faust-streaming #606), and no table writes from timers. The timer only writes a tick
to each partition this worker owns; the tick is consumed like an event, so deadlines fire in
order with the partition's events, and a worker that takes over a partition fires what came due
while nobody owned it on its first tick.
"""

from __future__ import annotations

import logging
import os
import shutil
import weakref
from datetime import timedelta
from pathlib import Path

import faust
from faust.streams import _current_event

from permitwatch.models.errors import Misconfigured
from permitwatch.streams.clocks import Clock
from permitwatch.streams.kafka.gaps import GapGuard
from permitwatch.streams.kafka.reference import ReferenceData
from permitwatch.streams.kafka.stages import CaseStage, CityStage, Stage, Step
from permitwatch.streams.kafka.wire import Output, Record, Tick, control_output, record_of
from permitwatch.streams.metrics import Metrics
from permitwatch.streams.settings import Settings

log = logging.getLogger("permitwatch.kafka.worker")

BATCH_RECORDS = 2000
"""The most records a stage takes in one batch: one round of acknowledgements and one marker per
partition for all of them."""
BATCH_WAIT_SECONDS = 0.1
"""How long a batch waits to fill: the latency a quiet stream adds to each record."""


class Worker:
    """The faust app with its topics, tables and agents, around the two stages."""

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
            producer_acks=-1,
            web_enabled=False,
            # Everything is bytes to faust (agents and tables copy the app's serializers, not a
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
        n = settings.partitions
        raw = {"key_type": bytes, "value_type": bytes}
        events = app.topic(topology.events, partitions=n, **raw)
        city_work = app.topic(topology.city, partitions=1, **raw)
        cases = app.Table("cases", partitions=n, **raw)
        city = app.Table("city", partitions=1, **raw)
        skew = timedelta(seconds=settings.max_future_skew_seconds)
        self.case_stage = CaseStage(topology, reference, cases, clock, skew, self.metrics)
        self.city_stage = CityStage(topology, reference.settings, city, clock, self.metrics)

        self.gaps = GapGuard(settings.bootstrap, self.metrics.gap_refills)
        app.agent(events, name="cases", concurrency=1)(self._consume(self.case_stage, self._read_reference))
        app.agent(city_work, name="city", concurrency=1)(self._consume(self.city_stage))
        app.timer(interval=settings.tick_interval_seconds, name="ticks")(self._tick)
        app.on_partitions_revoked.connect(self._revoked)

    def _consume(self, stage: Stage, before=None):
        async def agent(stream):
            # take_events acknowledges a batch's events only after this body is done with them
            # (faust-streaming 0.15; plain take() hands out values, which cannot set the context
            # the tables write in).
            async for events in stream.take_events(BATCH_RECORDS, within=BATCH_WAIT_SECONDS):
                try:
                    await self._batch(stage, events, before)
                except Exception:
                    # The stage's memory is now ahead of its tables, and faust would restart the
                    # agent in this process past the batch. Stop the process instead: a restart
                    # (or another worker) resumes from the committed offsets and the tables,
                    # which is the recovery every kill -9 already goes through.
                    log.critical("could not complete a batch of %s records from %s; stopping the worker",
                                 len(events), events[0].message.tp, exc_info=True)
                    os._exit(70)
        return agent

    async def _batch(self, stage: Stage, events, before) -> None:
        """Every record of the batch through its stage (writes held in the overlay), every output
        produced and acknowledged, then the table writes (`stages`)."""
        steps: list[Step] = []
        last_event = {}
        for event in events:
            record = record_of(event.message)
            last_event[record.partition] = event
            needed = stage.next_offset(record.partition)
            if record.offset > needed:
                async for skipped in self.gaps.missing(record.topic, record.partition, record.offset, needed):
                    steps.append(await self._step(stage, record_of(skipped), before))
            steps.append(await self._step(stage, record, before))
        await self.produce([out for step in steps for out in step.outputs])
        table = stage.table.base

        def put(partition: int, key: bytes, value: bytes | None) -> None:
            # Faust writes a table entry to the changelog partition (and RocksDB's partition
            # store) of the current event, which take_events does not set in this task.
            token = _current_event.set(weakref.ref(last_event[partition]))
            try:
                if value is not None:
                    table[key] = value
                elif key in table:
                    del table[key]
            finally:
                _current_event.reset(token)

        stage.commit(steps, put)

    @staticmethod
    async def _step(stage: Stage, record: Record, before) -> Step:
        if before is not None:
            await before(record)
        return stage.handle(record)

    async def _read_reference(self, record: Record) -> None:
        wanted = self.case_stage.reference_wanted(record)
        if wanted is not None:
            await self.reference.read(self.settings.bootstrap, wanted)

    async def produce(self, outputs: list[Output]) -> None:
        producer = self.app.producer
        pending = [await producer.send(out.topic, out.key, out.value, out.partition, None, list(out.headers) or None)
                   for out in outputs]
        for delivery in pending:
            await delivery

    async def _tick(self) -> None:
        now = self.clock.now()
        owned = sorted(tp.partition for tp in self.app.assignor.assigned_actives()
                       if tp.topic == self.topology.events)
        await self.produce([control_output(self.topology.events, partition, Tick(now)) for partition in owned])

    async def _revoked(self, sender, revoked, **kwargs) -> None:
        stages = {self.topology.events: self.case_stage, self.topology.city: self.city_stage}
        for tp in revoked:
            if tp.topic in stages:
                stages[tp.topic].reset(tp.partition)


class WorkerSetupError(Misconfigured):
    """The worker cannot start as configured; the message says why and what to do."""


def serve(worker: Worker) -> None:
    """Run the worker until stopped (SIGTERM, ^C), with its metrics served."""
    from prometheus_client import start_http_server

    settings = worker.settings
    if settings.store == "rocksdb":
        discard_local_tables(worker.app.conf.tabledir)
    if settings.metrics_port:
        try:
            start_http_server(settings.metrics_port, settings.metrics_host, registry=worker.metrics.registry)
        except OSError as exc:
            raise WorkerSetupError(f"metrics cannot listen on {settings.metrics_host}:{settings.metrics_port} "
                                   f"({exc.strerror}): every worker on a host needs its own --metrics-port "
                                   "(0: none)") from None
    faust.Worker(worker.app, loglevel=settings.log_level, redirect_stdouts=False).execute_from_commandline()


def discard_local_tables(tabledir: Path) -> None:
    """Remove the RocksDB files a previous run left, so that every table is restored from its
    changelog alone. faust would restore only the changelog after the offset it persisted, on
    top of the local files; but a worker killed mid-step has written to those files what it had
    not yet got acknowledged in the changelog, and the successor, redoing that step from the
    input, found state ahead of what it was redoing (docs/kafka.md, delivery guarantees)."""
    if tabledir.exists():
        log.info("discarding local table files in %s; tables are restored from their changelogs", tabledir)
        shutil.rmtree(tabledir)
