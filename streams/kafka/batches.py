"""Records of the stages' topics in batches, taken from faust's consumer below its streams.

Faust hands every record to its streams one by one: per record a wait on two futures in the
consumer's drain loop, the conductor's delivery to a channel queue, the stream's iteration with
its sensors and processors, and `take_events` buffering it again. That cost about 200 µs a
record here, as much as judging it (docs/kafka.md, Scaling). `BatchConsumer` takes what each
fetch returned for the stages' topics as one list and hands it to the stage's queue; records of
every other topic (the tables' changelogs during recovery and standby) go the way faust sends
them. Faust stays in charge of the group, the assignment, the tables and their recovery, and of
committing offsets: the stage tracks each record it takes and acknowledges it when the batch is
done, as faust's streams do (`Consumer.track_message`, `Consumer.ack`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from typing import Any

from faust.tables import TableManager
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, AppT, Message

QUEUED_BATCHES = 4
"""Fetched batches a stage may have waiting. Beyond that, the partitions they came from are
paused (faust's `on_buffer_full`, as for its streams' buffers) until the stage has taken half:
the drain loop itself never waits, so a busy stage does not hold back the other stage's records
or the tables' changelogs. A fetch returns at most `broker_max_poll_records` records."""


class StageFeed:
    """The batches of one topic on their way from the consumer's drain loop to its stage."""

    def __init__(self, app: AppT):
        self.app = app
        self.queue: asyncio.Queue[list[Message]] = asyncio.Queue()
        self.paused: set[TP] = set()

    def give(self, batch: list[Message]) -> None:
        self.queue.put_nowait(batch)
        if self.queue.qsize() >= QUEUED_BATCHES:
            consumer = self.app.consumer
            for tp in _partitions(batch) - self.paused:
                consumer.on_buffer_full(tp)
                self.paused.add(tp)

    async def take(self, most: int) -> list[Message]:
        """The next batch of records still for this worker, with what else is already waiting,
        up to about `most`; each is tracked until `done`. Waits for at least one."""
        while True:
            taken = self._current(await self.queue.get())
            while len(taken) < most and not self.queue.empty():
                taken += self._current(self.queue.get_nowait())
            if self.paused and self.queue.qsize() <= QUEUED_BATCHES // 2:
                consumer = self.app.consumer
                for tp in self.paused:
                    consumer.on_buffer_drop(tp)
                self.paused.clear()
            if taken:
                track = self.app.consumer.track_message
                for message in taken:
                    track(message)
                # What faust's streams note for its check of partitions fetched but not processed
                # (its "stream idle" errors), once a batch per partition.
                self.app.monitor.stream_inbound_time.update(dict.fromkeys(_partitions(taken), time.monotonic()))
                return taken

    def _current(self, batch: list[Message]) -> list[Message]:
        """Without records fetched before a rebalance began or for an earlier generation: faust
        seeks the partitions it assigns to their committed offsets, and they come again."""
        app = self.app
        if not app.flow_control.is_active():
            return []
        generation = app.consumer_generation_id
        return [message for message in batch if message.generation_id == generation]

    def done(self, batch: list[Message]) -> None:
        """The batch's offsets may be committed."""
        ack = self.app.consumer.ack
        for message in batch:
            ack(message)


def _partitions(batch: list[Message]) -> set[TP]:
    # faust's partition type: the messages' own is aiokafka's, which faust asserts its sets of
    # partitions do not hold.
    return {TP(topic, partition) for topic, partition in {(m.topic, m.partition) for m in batch}}


EMPTY_FETCH_PAUSE = 0.05
"""Seconds between a fetch from a broker that returned nothing and the next fetch from it."""


def pace_empty_fetches(fetcher: Any, pause: float = EMPTY_FETCH_PAUSE) -> None:
    """Make aiokafka's `fetcher` wait `pause` seconds, from its start, before it ends a fetch that
    brought nothing. Kafka holds an empty fetch up to `fetch.max.wait.ms`; noida-db answers it at
    once, and aiokafka asks again at once: the consumer thread then spent a fifth of the worker's
    time writing fetch requests for the idle city partition while the events partitions were
    paused for a busy stage, and the broker as much answering them (py-spy, `bench.kafka`). The
    broker stays marked busy during the pause, so no other fetch goes to it meanwhile; a fetch
    that brought records is not held."""
    fetch = fetcher._proc_fetch_request

    async def paced(assignment: Any, node_id: int, request: Any) -> bool:
        started = time.monotonic()
        brought = await fetch(assignment, node_id, request)
        # Cancelled when the consumer stops or the partitions move. aiokafka's own fetch returns
        # then instead of raising (so a cancelled fetch "brought nothing": no pause then), and its
        # `close` awaits the cancelled fetch without catching: raised from the pause, it killed
        # the consumer thread at every SIGTERM, and the worker then hung until SIGKILL.
        if not brought and not asyncio.current_task().cancelling():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(max(0.0, pause - (time.monotonic() - started)))
        return brought

    fetcher._proc_fetch_request = paced


class BatchConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    async def on_start(self) -> None:
        await super().on_start()
        pace_empty_fetches(self._consumer._fetcher)


class BatchConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer, whose drain loop hands the records of `feeds` to them in
    batches, and whose fetches from a broker that answers an empty fetch at once are paced."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.feeds: dict[str, StageFeed] = {}

    def _new_consumer_thread(self) -> BatchConsumerThread:
        return BatchConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:  # what faust's own loop does, by batch
        callback = self.callback
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        read_offset = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        feeds = self.feeds
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                self.diag.set_flag(CONSUMER_FETCHING)
                records = self.getmany(timeout=1.0)
                await self.sleep(0)
                if self.should_stop:
                    continue
                batches: dict[str, list[Message]] = {}
                async for tp, message in records:
                    offset = message.offset
                    last = read_offset[tp]
                    if last is not None and offset < last:
                        continue  # fetched again before the consumer moved on
                    if last and offset - last > 1 and acks_enabled_for(message.topic):
                        # Compaction or transaction markers left a gap: faust commits past it
                        # only if it knows of it.
                        await self._add_gap(tp, last + 1, offset)
                    if self._commit_every is not None and self._n_acked >= self._commit_every:
                        self._n_acked = 0
                        await self.commit()
                    if message.topic in feeds:
                        batches.setdefault(message.topic, []).append(message)
                    else:
                        await self.wait_first(callback(message), self.suspend_flow.wait())
                    read_offset[tp] = offset
                for topic, batch in batches.items():
                    feeds[topic].give(batch)
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if not self.transport.app.should_stop:
                raise
        except asyncio.CancelledError:
            if not self.transport.app.should_stop:
                raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)


class BatchTransport(faust_aiokafka.Transport):
    Consumer = BatchConsumer


class DeclaredTableManager(TableManager):
    """Faust's table manager without its first second: faust sleeps 1 s before it sets up the
    tables' changelogs, for tables that an app's modules declare while it starts. The worker
    declares both of its tables before it starts (a table added later is refused), so the second
    only delayed every start, fail-over included."""

    async def on_start(self) -> None:
        await self._update_channels()
        await self.recovery.start()


def feeds_of(app: AppT, topics: Iterable[str]) -> dict[str, StageFeed]:
    """A feed for each of `topics`, which `app`'s consumer (a `BatchConsumer`) fills."""
    feeds = {topic: StageFeed(app) for topic in topics}
    consumer = app.consumer
    if not isinstance(consumer, BatchConsumer):
        raise TypeError(f"the app's consumer is a {type(consumer).__name__}, not a BatchConsumer")
    consumer.feeds = feeds
    return feeds
