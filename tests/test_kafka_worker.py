"""The Kafka worker's parts that need no broker."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from aiokafka.errors import MessageSizeTooLargeError
from faust.exceptions import ProducerSendError

from permitwatch.models.deadletter import DeadLetter
from permitwatch.models.events import InvalidEvent
from permitwatch.streams.kafka.stages import dead_letter, event_output
from permitwatch.streams.kafka.topology import Topology
from permitwatch.streams.kafka.wire import Output, Record
from permitwatch.streams.kafka.worker import RecordTooLarge, Worker
from tests.factory import CaseEvents


class _Producer:
    """faust's producer as `Worker.produce` sees it, refusing records over `limit` bytes: itself
    (as aiokafka does before sending, wrapped by faust) or at delivery (as the broker does)."""

    def __init__(self, limit: int, by_broker: bool):
        self.limit, self.by_broker = limit, by_broker

    async def send(self, topic, key, value, partition, timestamp, headers):
        delivery = asyncio.get_running_loop().create_future()
        if len(value) <= self.limit:
            delivery.set_result(SimpleNamespace(topic=topic, offset=0))
        elif self.by_broker:
            delivery.set_exception(MessageSizeTooLargeError())
        else:
            try:
                raise MessageSizeTooLargeError()
            except MessageSizeTooLargeError as exc:
                raise ProducerSendError("Error while sending") from exc
        return delivery


@pytest.mark.parametrize("by_broker", [False, True])
def test_a_record_refused_for_its_size_names_its_topic_key_size_and_what_to_raise(by_broker):
    worker = SimpleNamespace(app=SimpleNamespace(producer=_Producer(1000, by_broker)), topology=Topology("t", 4))
    outputs = [Output("t.alerts", b"PW-001-x", b"{}"), Output("t.referrals", b"REF-1", b"x" * 5000)]
    with pytest.raises(RecordTooLarge) as refused:
        asyncio.run(Worker.produce(worker, outputs))
    message = str(refused.value)
    assert "5,005 bytes for t.referrals (key REF-1)" in message
    assert ("max.message.bytes" if by_broker else "PERMITWATCH_MAX_RECORD_BYTES=8,388,608") in message
    assert [meta.topic for meta in asyncio.run(Worker.produce(worker, outputs[:1]))] == ["t.alerts"]


def test_a_dead_letter_too_large_for_a_record_says_where_its_original_is_instead_of_copying_it():
    """A dead letter wraps its input's bytes, escaped: an invalid event of nearly the limit made a
    letter the broker refused, which stopped the worker on every restart."""
    topology = Topology("t", 4, max_record_bytes=1 << 20)
    record = Record("t.events", 2, 41, b"SZ-1", b'{"x": "' + b'"' * 600_000 + b'"}')
    small = dead_letter(topology, "t.events/2/41", "invalid_json", "not JSON", b"{not json", record)
    assert DeadLetter.model_validate_json(small.value).original() == b"{not json"
    letter = DeadLetter.model_validate_json(dead_letter(topology, record.origin, "invalid_json", "not JSON",
                                                         record.value, record).value)
    assert letter.category == "invalid_json" and letter.raw is None and letter.raw_base64 is None
    assert letter.reason.startswith("not JSON (its 600,009 bytes are not copied here")
    assert "it is at t.events partition 2 offset 41" in letter.reason


def test_an_event_over_the_record_limit_is_refused_as_too_large():
    topology = Topology("t", 4, max_record_bytes=1 << 20)
    event = CaseEvents("SZ-1").submitted("2026-03-02 09:00")
    raw = event.model_dump_json().encode()
    assert event_output(topology, event, raw) == Output("t.events", b"SZ-1", raw)
    padded = raw[:-1] + b', "padding": "' + b"x" * (1 << 20) + b'"}'
    with pytest.raises(InvalidEvent) as refused:
        event_output(topology, event, padded)
    assert refused.value.category == "too_large" and "PERMITWATCH_MAX_RECORD_BYTES" in refused.value.reason


def test_the_backlog_counts_each_judged_partitions_records_after_the_last_it_judged():
    """`permitwatch_backlog_records`, as the scrape reads it: the consumer's high watermark (the next
    offset to be written) against the last offset each stage judged; a partition not judged since
    its assignment, or whose watermark the consumer cannot give, is not counted."""
    from faust.types import TP

    def highwater(tp):
        if tp.partition == 3:
            raise AssertionError("partition is not assigned")  # aiokafka, during a rebalance
        return {("t.events", 0): 11, ("t.events", 1): 5, ("t.events", 2): 9, ("t.city", 0): 42}[tp.topic, tp.partition]

    actives = {TP("t.events", p) for p in range(4)} | {TP("t.city", 0), TP("t-cases-changelog", 0)}
    worker = SimpleNamespace(topology=Topology("t", 4), _consumer=SimpleNamespace(highwater=highwater),
                             app=SimpleNamespace(assignor=SimpleNamespace(assigned_actives=lambda: set(actives))),
                             case_stage=SimpleNamespace(applied={0: 0, 1: 4, 3: 1}),  # 2: restoring
                             city_stage=SimpleNamespace(applied={0: 39}))
    assert Worker._backlog(worker, "t.events") == 10 + 0
    assert Worker._backlog(worker, "t.city") == 2
    worker._consumer = None  # before the first assignment
    assert Worker._backlog(worker, "t.events") == 0
