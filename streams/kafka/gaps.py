"""Records faust never delivered, read directly from the broker.

faust can skip records of a partition: its fetcher resumes a partition before it seeks back to
the committed offset after a rebalance, and drops what it fetched in between, and with no
committed offset (a new group) there is nothing to seek back to (faust-streaming #216 is the same
race); it commits offsets past gaps it saw in the stream; and it commits a source offset before
the table writes of that record have reached the changelog, so a worker killed in between leaves
its successor a table behind the committed offset. Seen on tansu, whose fetches return within
milliseconds: a killed worker's successor found its referral table four records behind.

A stage's applied-offset marker says which offset it needs next. When a record arrives beyond
that offset, the guard reads the partition from the needed offset with a consumer of its own
(outside faust's fetcher, whose read offsets would drop what a seek re-fetched) and the worker
applies those records first. Offsets where the log holds nothing (transaction markers, records
removed by retention) are a real gap and yield nothing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord
from prometheus_client import Counter

log = logging.getLogger("permitwatch.kafka.gaps")


class GapGuard:
    def __init__(self, bootstrap: str, refills: Counter, patience: int = 10):
        self.bootstrap = bootstrap
        self.refills = refills
        self.patience = patience
        """Empty fetches (a second each) in a row after which the offsets left are a real gap."""

    async def missing(self, topic: str, partition: int, offset: int, needed: int) -> AsyncIterator[ConsumerRecord]:
        """The records in [needed, offset) of the partition, in order, when the record at `offset`
        arrives and the stage needs `needed` next; nothing when `offset <= needed`."""
        if offset <= needed:
            return
        tp = TopicPartition(topic, partition)
        # A consumer per gap: gaps are rare, and both stages of a worker may meet one at once.
        probe = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                 auto_offset_reset="earliest", client_id="permitwatch-gap-reader")
        await probe.start()
        try:
            probe.assign([tp])
            probe.seek(tp, needed)
            found = empty = 0
            # A position the broker no longer has resets to the log start (auto_offset_reset).
            while await probe.position(tp) < offset and empty < self.patience:
                batch = (await probe.getmany(tp, timeout_ms=1000)).get(tp, [])
                empty = 0 if batch else empty + 1
                for record in batch:
                    if record.offset >= offset:
                        break
                    if not found:
                        log.warning("%s-%d: the consumer delivered offset %d while %d was needed; reading "
                                    "from the broker what it skipped", topic, partition, offset, needed)
                        self.refills.inc()
                    found += 1
                    yield record
        finally:
            await probe.stop()
        if found:
            log.warning("%s-%d: %d skipped records applied", topic, partition, found)
