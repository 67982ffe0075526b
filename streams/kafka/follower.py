"""The API's read model of a Kafka deployment: the events, alerts, referrals, dead letters and
operators' actions topics copied into the same SQLite store the embedded runtime writes, so the
API, the console and the SSE stream serve both runtimes with the same code, and every API
instance shows the same actions.

Workers deliver at least once: after a restart they may produce an output again, identical and
with the same source header (`wire.SOURCE_HEADER`). The follower keeps the first and drops the
repeats, and it stores each batch and its topic positions in one transaction, so a restarted
API resumes where it stopped without gaps or repeats.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from permitwatch.models.alerts import Alert
from permitwatch.models.deadletter import DeadLetter
from permitwatch.models.events import InvalidEvent, parse_event_with_digest
from permitwatch.models.referrals import Referral
from permitwatch.streams.kafka.topology import Topology
from permitwatch.streams.kafka.wire import SOURCE_HEADER, Record, action_of, is_control, record_of
from permitwatch.streams.metrics import Metrics
from permitwatch.streams.store import Store

log = logging.getLogger("permitwatch.kafka.follower")


def _position_key(tp: TopicPartition) -> str:
    return f"kafka/{tp.topic}/{tp.partition}"


class Follower:
    def __init__(self, bootstrap: str, topology: Topology, store: Store, metrics: Metrics,
                 notify: Callable[[], None]):
        self.bootstrap = bootstrap
        self.topology = topology
        self.store = store
        self.metrics = metrics
        self.notify = notify
        self.caught_up = False
        """Whether every topic has been read to its end once since the start."""
        self.error: str | None = None

    def partitions(self) -> list[TopicPartition]:
        t = self.topology
        return [*(TopicPartition(topic, p) for topic in (t.events, t.alerts, t.referrals, t.dead_letter)
                  for p in range(t.partitions)), TopicPartition(t.actions, 0)]

    async def run(self) -> None:
        """Follow the topics until cancelled; a broker outage is retried, and reported by `error`."""
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("following %s failed (%s); retrying in 5 s", self.bootstrap, self.error)
                await asyncio.sleep(5)

    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest", client_id="permitwatch-api")
        await consumer.start()
        try:
            partitions = self.partitions()
            consumer.assign(partitions)
            for tp in partitions:
                stored = self.store.meta(_position_key(tp))
                if stored is None:
                    await consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, int(stored))
            ends = await consumer.end_offsets(partitions)
            self.error = None
            while True:
                batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
                if batches:
                    await asyncio.to_thread(self._store, batches)
                    self.notify()
                if not self.caught_up:
                    self.caught_up = all([await consumer.position(tp) >= ends[tp] for tp in partitions])
        finally:
            await consumer.stop()

    def _store(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        """A batch and the positions after it, in one transaction."""
        received = datetime.now(UTC)
        with self.store.write_lock, self.store.transaction() as tx:
            for tp, records in batches.items():
                for consumed in records:
                    record = record_of(consumed)
                    produced = datetime.fromtimestamp(consumed.timestamp / 1000, UTC)
                    try:
                        self._one(tx, record, produced, received)
                    except ValueError as exc:  # pydantic's ValidationError, orjson's JSONDecodeError
                        origin = record.origin
                        log.error("%s is not a permitwatch record: %s", origin, exc)
                        Store.dead_letter(tx, DeadLetter.of(origin, "schema", f"not a permitwatch record: {exc}",
                                                            record.value or b""), received)
                Store.set_meta(tx, _position_key(tp), str(records[-1].offset + 1))

    def _one(self, tx, record: Record, produced: datetime, received: datetime) -> None:
        t = self.topology
        topic, value = record.topic, record.value or b""
        if topic == t.events:
            if is_control(record):
                return
            try:
                event, digest = parse_event_with_digest(value)
            except InvalidEvent:
                return  # the workers dead-letter it; the follower sees their letter
            if Store.known_events(tx, [event]).get((event.source, event.id)):
                return  # a repeat, or a conflict the workers dead-letter: the first stays
            stamp = produced.isoformat()
            Store.journal_events(tx, [Store.journal_row(event, value, digest, stamp, stamp)])
            return
        if topic == t.actions:
            action = action_of(record)
            Store.insert_action(tx, action, action.seq)
            return
        source = record.header(SOURCE_HEADER)
        if source is not None and not Store.first_delivery(tx, source.decode()):
            return
        if topic == t.alerts:
            Store.outputs(tx, [Alert.model_validate_json(value)], [], received)
        elif topic == t.referrals:
            Store.outputs(tx, [], [Referral.model_validate_json(value)], received)
        elif topic == t.dead_letter:
            Store.dead_letter(tx, DeadLetter.model_validate(orjson.loads(value)), received)
