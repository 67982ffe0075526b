"""The Kafka worker's parts that need no broker."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from aiokafka.errors import MessageSizeTooLargeError
from faust.exceptions import ProducerSendError

from permitwatch.streams.kafka.topology import Topology
from permitwatch.streams.kafka.wire import Output
from permitwatch.streams.kafka.worker import RecordTooLarge, Worker


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
