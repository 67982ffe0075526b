"""Kafka workers end to end against a local broker started here (noida-db or tansu, the brokers
the tests use; Apache Kafka is not installable on these machines), beside the broker's own speed.

    python -m bench.kafka [--events N] [--partitions P] [--workers W] [--broker noida-db|tansu]
                          [--store memory|rocksdb]

The generated city log is produced to the events topic first. Then, on the same broker:

- the anchor: a plain aiokafka loop that consumes those records and produces one record for each,
  sending what each fetch returned and awaiting its acknowledgements together (records/s), run
  before the workers and again after them (the ratio is to the mean of the two);
- W `permitwatch worker` processes, timed from their start until every alert record and referral
  version that `permitwatch replay` of the log writes is on the output topics and the step of the
  log's last event on each partition has sent its state (group join, reference read and recovery
  included: what an operator waits for). Both moments are the records' timestamps, which the
  workers' producer sets when it sends them (the output records; the case changelog's marker of
  that step and its writes); left out are their acknowledgement (a round trip), the city stage's
  state writes after its last output (milliseconds), and what only says how late the bench
  looked: its once-a-second polling and the workers' periodic offset commit (every 2.8 s, faust's
  default), which it also waits for and whose time it prints. The rate after the first output
  appeared is printed too: the start-up costs seconds that a short log does not amortise.

Between the first anchor and the workers, the stages alone (the tests' in-memory cluster, no
broker) on the same log: the most one worker could do with a free transport.

Ends with `kafka: worker W events/s end to end, raw batched loop R records/s, ratio X`. Its
temporary directory (broker data, worker state and logs) is removed unless --keep is given.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path

import orjson

from bench.common import generated_log, machine
from permitwatch.streams.kafka.reference import publish_reference
from permitwatch.streams.kafka.topology import Topology, ensure_topics
from permitwatch.streams.simulation.sample_catalog import SAMPLE_CATALOG
from tests.brokers import Broker, WorkerProcess, committed, end_offsets, produce, read_topic, start

GIVE_UP_SECONDS = 1800
IDLE_SECONDS = 10
POLL_SECONDS = 1


def expected_outputs(lines: list[bytes], until: datetime) -> tuple[set[bytes], set[bytes]]:
    """The alert records and referral versions `permitwatch replay` writes for `lines`, with the
    clock at `until`: the bytes the workers must produce."""
    from permitwatch.alerts.clock import WorkingCalendar
    from permitwatch.alerts.engine import Engine
    from permitwatch.models.settings import RuleSettings
    from permitwatch.streams.inputs.readers import Record
    from permitwatch.streams.replay import replay

    engine = Engine(SAMPLE_CATALOG.by_code(), WorkingCalendar(), RuleSettings())
    alerts, referrals = io.BytesIO(), io.BytesIO()
    records = (Record(f"bench:{n}", line) for n, line in enumerate(lines))
    replay(records, engine, alerts, io.BytesIO(), until=until, referrals_out=referrals)
    return set(alerts.getvalue().splitlines()), set(referrals.getvalue().splitlines())


async def raw_batched_loop(broker: Broker, source: str, partitions: int, records: int) -> float:
    """Records/s of the plainest consume-and-produce loop aiokafka allows on this broker: what a
    worker would reach if judging cost nothing."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    options = {"max_batch_size": broker.max_batch_size} if broker.max_batch_size else {}
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", **options)
    await consumer.start()
    await producer.start()
    try:
        tps = [TopicPartition(source, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        done = 0
        started = time.perf_counter()
        while done < records:
            fetched = await consumer.getmany(timeout_ms=1000, max_records=2000)
            batch = [message for messages in fetched.values() for message in messages]
            pending = [await producer.send("bench.raw-out", message.value, key=message.key) for message in batch]
            for delivery in pending:
                await delivery
            done += len(batch)
        return done / (time.perf_counter() - started)
    finally:
        await producer.stop()
        await consumer.stop()


def stages_alone(records: list[tuple[bytes, bytes]], partitions: int, until: datetime) -> tuple[float, float]:
    """Events/s of both stages with no broker at all (the tests' in-memory cluster, batches of up
    to a worker's from random partitions): what one worker could reach with a free transport; and
    the city stage's share of that time, which says how many workers' input the one city stage
    can take."""
    from permitwatch.streams.kafka.worker import BATCH_RECORDS
    from permitwatch.streams.tuning import tune_gc
    from tests.memory_kafka import Crashes, MemoryCluster

    tune_gc()  # as `permitwatch worker` does

    spent: dict[str, float] = {}

    class Timed(MemoryCluster):
        def _consume(self, topic: str, batch: list) -> None:
            started = time.perf_counter()
            super()._consume(topic, batch)
            spent[topic] = spent.get(topic, 0.0) + time.perf_counter() - started

    topology = Topology("alone", partitions)
    cluster = Timed(topology, SAMPLE_CATALOG, now=until, crashes=Crashes(batch=BATCH_RECORDS))
    for key, line in records:
        cluster.send_raw(key, line)
    started = time.perf_counter()
    cluster.run()
    elapsed = time.perf_counter() - started
    return len(records) / elapsed, spent.get(topology.city, 0.0) / elapsed


async def _record_counts(broker: Broker, topics: list[str]) -> int:
    return sum((await end_offsets(broker, topics)).values())


async def _output_records(broker: Broker, topology: Topology) -> tuple[list, list]:
    return await read_topic(broker, topology.alerts), await read_topic(broker, topology.referrals)


async def _last_steps_written(broker: Broker, changelog: str, log_ends: dict[int, int], since: float) -> float:
    """When the step of the last event of each events partition (offset `log_ends[p] - 1`) had
    sent its state: the latest timestamp (s) on the case changelog from the first marker past that
    event to the record before the next marker (the marker goes first, its run's writes after
    it), over the partitions. Each partition's tail is read, widened until it starts before that
    marker."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from permitwatch.streams.kafka.wire import decode_marker, marker_key

    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        written = 0.0
        for partition, log_end in log_ends.items():
            if log_end == 0:
                continue  # no event of the log on this partition
            tp = TopicPartition(changelog, partition)
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            tail = 4096
            while True:
                start = max(0, end - tail)
                consumer.seek(tp, start)
                records = []
                while await consumer.position(tp) < end:
                    records += (await consumer.getmany(tp, timeout_ms=2000)).get(tp, [])
                markers = [n for n, record in enumerate(records) if record.key == marker_key(partition)]
                past = next((n for n in markers if decode_marker(records[n].value).offset >= log_end - 1), None)
                if start == 0 or (past is not None and past != markers[0]):
                    break
                tail *= 4
            if past is None:
                raise SystemExit(f"no marker on {changelog} {partition} says the log's last event was judged")
            following = next((n for n in markers if n > past), len(records))
            written = max(written, *_stamps(records[past:following], since))
        return written
    finally:
        await consumer.stop()


def _stamps(records: list, since: float) -> list[float]:
    """The records' timestamps (s): those a producer gave them (CreateTime: when the worker sent
    them, its acknowledgement a round trip later), checked to lie between `since` and now."""
    stamps = [record.timestamp / 1000 for record in records]
    for record, at in zip(records, stamps, strict=True):
        if record.timestamp_type != 0 or not since <= at <= time.time():
            raise SystemExit(f"a record of {record.topic} has timestamp {record.timestamp} of type "
                             f"{record.timestamp_type}, not a producer's time during this run")
    return stamps


def run(events: int, partitions: int = 4, workers: int = 1, broker_name: str = "noida-db", store: str = "memory",
        keep: bool = False) -> dict:
    lines = generated_log(events).read_bytes().splitlines()[:events]
    last = max(datetime.fromisoformat(orjson.loads(line)["time"]) for line in lines)
    expected_alerts, expected_referrals = expected_outputs(lines, last)
    directory = Path(tempfile.mkdtemp(prefix="permitwatch-bench-kafka-"))
    broker = start(broker_name, directory / broker_name)
    topology = Topology("bench", partitions)
    processes: list[WorkerProcess] = []
    try:
        asyncio.run(ensure_topics(broker.bootstrap, topology))
        options = {"max_batch_size": broker.max_batch_size} if broker.max_batch_size else {}
        asyncio.run(publish_reference(broker.bootstrap, topology, SAMPLE_CATALOG, [], options))
        records = [(str(orjson.loads(line).get("subject", "")).encode(), line) for line in lines]
        asyncio.run(produce(broker, topology.events, records))
        raw = asyncio.run(raw_batched_loop(broker, topology.events, partitions, len(records)))
        alone, city_share = stages_alone(records, partitions, last)
        # The workers' clock starts at the log's last event: nothing is judged late, and the
        # deadlines the log leaves open are not yet due.
        processes += [WorkerProcess(broker, directory, "bench", partitions, last.isoformat(), name=f"worker-{n}",
                                    store=store, instance=f"worker-{n}") for n in range(workers)]
        log_ends = {partition: end for (_, partition), end in
                    asyncio.run(end_offsets(broker, [topology.events])).items()}
        started, started_at = time.perf_counter(), time.time()
        for process in processes:
            process.start()
        while True:
            time.sleep(POLL_SECONDS)
            for process in processes:
                if process.process.poll() is not None:
                    raise SystemExit(f"a worker exited; log in {process.log}")
            # Counted first, read only once there are enough: reading the output topics every
            # second took as much of the broker's time (on the same two cores) as the workers' own.
            produced = asyncio.run(_record_counts(broker, [topology.alerts, topology.referrals]))
            consumed = asyncio.run(committed(broker, "bench-workers", topology.events, partitions))
            behind = sum(max(0, end - consumed.get(partition, 0)) for partition, end in log_ends.items())
            missing = (len(expected_alerts), len(expected_referrals))
            if produced >= sum(missing) and not behind:
                alerts, referrals = asyncio.run(_output_records(broker, topology))
                missing = (len(expected_alerts - {record.value for record in alerts}),
                           len(expected_referrals - {record.value for record in referrals}))
                if missing == (0, 0):
                    break
            if time.perf_counter() - started > GIVE_UP_SECONDS:
                raise SystemExit(f"after {GIVE_UP_SECONDS} s still missing {missing[0]} alert records and "
                                 f"{missing[1]} referral versions, {behind} events not committed; logs in {directory}")
        noticed = time.perf_counter() - started
        stamps = _stamps([*alerts, *referrals], started_at) or [started_at]  # a log with no output at all
        last_steps = asyncio.run(_last_steps_written(broker, "bench-workers-cases-changelog", log_ends, started_at))
        last_output = max(stamps) - started_at
        elapsed = max(last_output, last_steps - started_at)
        first_output = min(stamps) - started_at
        # Idle now: what the workers still write is control traffic (ticks, the partitions' clocks
        # for the city stage, the markers and state those steps write to the changelogs).
        control = [topology.events, topology.city, "bench-workers-cases-changelog", "bench-workers-city-changelog"]
        before = asyncio.run(_record_counts(broker, control))
        time.sleep(IDLE_SECONDS)
        idle = (asyncio.run(_record_counts(broker, control)) - before) / IDLE_SECONDS
        for process in processes:
            process.stop()
        # Again once the workers are gone: on this shared machine the loop alone moves by a third
        # from one minute to the next, so the anchor brackets the workers' run in time.
        raw_after = asyncio.run(raw_batched_loop(broker, topology.events, partitions, len(records)))
    finally:
        for process in processes:  # also when one exited or the run gave up: none is left behind
            process.stop()
        broker.stop()
        if not keep:
            shutil.rmtree(directory, ignore_errors=True)
    return {"events": len(records), "seconds": elapsed, "events_per_s": len(records) / elapsed,
            "noticed_seconds": noticed, "last_output_seconds": last_output,
            "first_output_seconds": first_output,
            "after_first_output_per_s": len(records) / (elapsed - first_output) if elapsed > first_output else None,
            "raw_records_per_s": (raw + raw_after) / 2, "raw_before_per_s": raw, "raw_after_per_s": raw_after,
            "ratio": len(records) / elapsed / ((raw + raw_after) / 2), "broker": broker_name,
            "stages_alone_per_s": alone, "city_share": city_share,
            "partitions": partitions, "workers": workers, "store": store,
            "alerts": len(expected_alerts), "referral_versions": len(expected_referrals),
            "idle_records_per_s": idle}


def summary(result: dict) -> str:
    return (f"kafka: worker {result['events_per_s']:,.0f} events/s end to end, raw batched loop "
            f"{result['raw_records_per_s']:,.0f} records/s, ratio {result['ratio']:.3f}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--broker", choices=["noida-db", "tansu"], default="noida-db")
    parser.add_argument("--store", choices=["memory", "rocksdb"], default="memory")
    parser.add_argument("--keep", action="store_true", help="keep the broker data and worker logs")
    args = parser.parse_args(argv)
    result = run(args.events, args.partitions, args.workers, args.broker, args.store, args.keep)
    print(f"machine: {machine()}")
    print(f"broker: {args.broker}, {args.partitions} partitions, store {args.store}, {args.workers} worker(s)")
    print(f"workers: {result['events']:,} events in {result['seconds']:.1f} s, until all {result['alerts']:,} "
          f"alert records and {result['referral_versions']:,} referral versions of replay were out and the last "
          f"event of each partition judged (from start: group join and reference read included; the records' "
          f"timestamps; the last output at {result['last_output_seconds']:.1f} s); the bench saw it, and the log "
          f"committed, after {result['noticed_seconds']:.1f} s")
    if result["after_first_output_per_s"]:
        print(f"first output after {result['first_output_seconds']:.1f} s; all events over the time from then: "
              f"{result['after_first_output_per_s']:,.0f} events/s (a bound: some were judged before)")
    print(f"stages alone (both, the tests' in-memory cluster, no broker): {result['stages_alone_per_s']:,.0f} "
          f"events/s, what one worker could reach with a free transport; the city stage's share "
          f"{result['city_share']:.1%}: it alone could take the case stages of "
          f"{(1 - result['city_share']) / result['city_share']:.0f} such workers")
    print(f"raw batched loop: {result['raw_before_per_s']:,.0f} records/s before the workers, "
          f"{result['raw_after_per_s']:,.0f} after; the ratio is to their mean")
    print(f"idle control traffic: {result['idle_records_per_s']:,.1f} records/s on the events, city and "
          f"changelog topics ({args.partitions} partitions, one tick a second)")
    print(summary(result))
    return result


if __name__ == "__main__":
    main()
