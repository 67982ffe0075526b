"""`permitwatch import --kafka`: loading history (last year's cases) into a Kafka deployment, judged
as `permitwatch replay` judges it, before the deployment goes live.

The events go to the events topic in time order, each partition's clock moved along with them by
ticks dated in event time (after every batch, to every partition), and finally just past the last
event (or `--until`). A worker started afterwards reads them before any tick of its own (those
come after them in every partition), so deadlines fire on the events' clock, not today's, and the
alerts and referral versions are replay's; then the deployment carries on live.

Into a deployment whose events topic holds anything (events, or ticks: a worker has run) history
would be judged at a clock already past it: that is refused, with what to do instead."""

from __future__ import annotations

from datetime import datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from permitwatch.alerts.clock import JUST_AFTER
from permitwatch.models.errors import Refused
from permitwatch.models.events import InvalidEvent, parse_event
from permitwatch.models.settings import RuleSettings
from permitwatch.models.views import HistoryReport, Rejection
from permitwatch.streams.inputs.readers import Record, untimed
from permitwatch.streams.kafka.reference import ReferenceData
from permitwatch.streams.kafka.stages import dead_letter, event_output
from permitwatch.streams.kafka.topology import Topology, ensure_topics
from permitwatch.streams.kafka.wire import CONTROL_HEADER, Output, Tick, control_output


class HistoryRefused(Refused):
    """The deployment cannot take history exactly; the message says why and what to do."""


async def _has_judged_records(bootstrap: str, topology: Topology) -> bool:
    """Records of the events topic other than reference changes (which `permitwatch reference`
    writes before any worker runs): events, or the ticks of a worker."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, client_id="permitwatch-import", enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topology.events, p) for p in range(topology.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        unread = {tp for tp in partitions if await consumer.position(tp) < ends[tp]}
        while unread:
            for tp, records in (await consumer.getmany(*unread, timeout_ms=1000)).items():
                for record in records:
                    if dict(record.headers).get(CONTROL_HEADER) != b"reference":
                        return True
                if await consumer.position(tp) >= ends[tp]:
                    unread.discard(tp)
        return False
    finally:
        await consumer.stop()


async def import_history(bootstrap: str, topology: Topology, events: list[tuple[datetime | None, Record]],
                         unmapped: list[tuple[Record, str]] = (), until: datetime | None = None, batch: int = 2000,
                         producer_options: dict | None = None) -> HistoryReport:
    """Produce `events` (time, record; None: no usable time) to a deployment no worker has run on;
    `unmapped` (records no event came from, with the reason) go to the dead-letter topic."""
    await ensure_topics(bootstrap, topology)
    reference = ReferenceData(topology, RuleSettings())
    await reference.read(bootstrap)
    if not reference.entries:
        raise HistoryRefused(
            f"{topology.catalog} holds no catalog: history would be judged without time limits. Publish it first "
            "with `permitwatch reference --catalog FILE` (and any --calendar), then import")
    if await _has_judged_records(bootstrap, topology):
        raise HistoryRefused(
            f"{topology.events} already holds events or the ticks of a worker that has run: its "
            "partitions' clocks are past history, which would be judged at them. Import history into a new "
            "deployment (another --topic-prefix and worker --group) before starting its workers, or replay it with "
            "`permitwatch replay`")
    summary = HistoryReport()
    timed = sorted((pair for pair in events if pair[0] is not None), key=lambda pair: pair[0])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", client_id="permitwatch-import",
                                enable_idempotence=False, **(producer_options or {}))
    await producer.start()
    try:
        outputs = [dead_letter(topology, record.origin, "unmapped", reason, record.raw) for record, reason in unmapped]
        for index, record in enumerate(record for time, record in events if time is None):
            refusal = untimed(record, index)
            outputs.append(dead_letter(topology, record.origin, refusal.category, refusal.reason, record.raw))
            summary.rejected.append(refusal)
        for start in range(0, len(timed), batch):
            chunk = timed[start:start + batch]
            for index, (_, record) in enumerate(chunk, start):
                summary.events += 1
                # `timed` read it with the digest's strict reader: what that refuses is `untimed`'s
                try:
                    outputs.append(event_output(topology, parse_event(record.raw), record.raw))
                except InvalidEvent as invalid:
                    outputs.append(dead_letter(topology, record.origin, invalid.category, invalid.reason, record.raw))
                    summary.rejected.append(Rejection(index=index, category=invalid.category, reason=invalid.reason,
                                                      origin=record.origin))
                    continue
                summary.accepted += 1
            outputs += _ticks(topology, chunk[-1][0])
            await _produce(producer, outputs)
            outputs = []
        if timed:
            summary.first, summary.last = timed[0][0], timed[-1][0]
            end = max(until, summary.last) if until is not None else summary.last
            # Just past the end as well: what waited for every event of the last instant goes through.
            outputs += _ticks(topology, end) + _ticks(topology, end + JUST_AFTER)
        await _produce(producer, outputs)
    finally:
        await producer.stop()
    return summary


def _ticks(topology: Topology, at: datetime) -> list[Output]:
    return [control_output(topology.events, partition, Tick(at)) for partition in range(topology.partitions)]


async def _produce(producer: AIOKafkaProducer, outputs: list[Output]) -> None:
    pending = [await producer.send(out.topic, out.value, key=out.key, partition=out.partition,
                                   headers=list(out.headers) or None) for out in outputs]
    for delivery in pending:
        await delivery
