"""Kafka worker throughput against a local broker started here (noida-db or tansu, the brokers
the tests use; Apache Kafka is not installable on these machines).

    python -m bench.kafka [--events N] [--partitions P] [--broker noida-db|tansu] [--store memory|rocksdb]

The generated city log is produced to the events topic first; then one `permitwatch worker`
starts and the clock runs from its first poll until the worker's applied-offset markers cover
every record of the events topic (its own ticks included). Prints events/s, and the alert,
referral and dead-letter records it produced.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import orjson

from bench.common import generated_log, machine
from permitwatch.streams.kafka.reference import publish_reference
from permitwatch.streams.kafka.topology import Topology, ensure_topics
from permitwatch.streams.simulation.sample_catalog import SAMPLE_CATALOG
from tests.brokers import WorkerProcess, produce, read_topic, start


async def _end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
        return {tp.partition: end for tp, end in ends.items()}
    finally:
        await consumer.stop()


async def _committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return {p: (await consumer.committed(TopicPartition(topic, p))) or 0 for p in range(partitions)}
    finally:
        await consumer.stop()


def worker_throughput(events: int, partitions: int = 4, broker_name: str = "noida-db", store: str = "memory") -> dict:
    log = generated_log(events)
    lines = log.read_bytes().splitlines()[:events]
    records = [(_subject(line), line) for line in lines]
    directory = Path(tempfile.mkdtemp(prefix="permitwatch-bench-kafka-"))
    broker = start(broker_name, directory / broker_name)
    topology = Topology("bench", partitions)
    try:
        asyncio.run(ensure_topics(broker.bootstrap, topology))
        options = {"max_batch_size": broker.max_batch_size} if broker.max_batch_size else {}
        asyncio.run(publish_reference(broker.bootstrap, topology, SAMPLE_CATALOG, [], options))
        started = time.perf_counter()
        asyncio.run(produce(broker, topology.events, records))
        produce_seconds = time.perf_counter() - started
        produced = asyncio.run(_end_offsets(broker.bootstrap, topology.events, partitions))
        worker = WorkerProcess(broker, directory, "bench", partitions, _last_time(lines), store=store).start()
        started = time.perf_counter()
        group = "bench-workers"
        while True:
            time.sleep(1)
            if worker.process.poll() is not None:
                raise SystemExit(f"the worker exited; log in {worker.log}")
            done = asyncio.run(_committed(broker.bootstrap, group, topology.events, partitions))
            if all(done[p] >= produced[p] for p in produced):
                break
        elapsed = time.perf_counter() - started
        worker.stop()
        counts = {name: len(asyncio.run(read_topic(broker, topic))) for name, topic in
                  (("alerts", topology.alerts), ("referrals", topology.referrals),
                   ("dead letters", topology.dead_letter))}
    finally:
        broker.stop()
    return {"events": len(records), "seconds": elapsed, "events_per_s": len(records) / elapsed,
            "produce_seconds": produce_seconds, "broker": broker_name, "partitions": partitions, "store": store,
            "records_out": counts}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--broker", choices=["noida-db", "tansu"], default="noida-db")
    parser.add_argument("--store", choices=["memory", "rocksdb"], default="memory")
    args = parser.parse_args(argv)
    result = worker_throughput(args.events, args.partitions, args.broker, args.store)
    print(f"produced {result['events']:,} events in {result['produce_seconds']:.1f} s")
    print(f"machine: {machine()}")
    print(f"broker: {args.broker}, {args.partitions} partitions, store {args.store}, one worker")
    print(f"worker: {result['events']:,} events in {result['seconds']:.1f} s (from start, including group join, "
          f"reference read and up to one commit interval) = {result['events_per_s']:,.0f} events/s")
    print("records out: " + ", ".join(f"{count:,} {name}" for name, count in result["records_out"].items()))
    return result


def _subject(line: bytes) -> bytes:
    return str(orjson.loads(line).get("subject", "")).encode()


def _last_time(lines: list[bytes]) -> str:
    return max(orjson.loads(line)["time"] for line in lines)


if __name__ == "__main__":
    main()
