"""Fail-over of a Kafka worker after kill -9, with one events partition holding N open cases.

    python -m bench.failover [--cases N] [--broker noida-db|tansu] [--keep]

Produces N submitted-and-accepted cases to a one-partition deployment and lets worker A judge
them (worker B runs beside it with a standby copy of the tables). Then, each timed from the
kill -9 until the successor logs that it judges the partition again (its first record after
taking the partition, a tick at the latest one second later):

1. replacement: A is killed; B, holding the standby, takes the partition once the group
   notices (the tests' group settings: session timeout 10 s, heartbeat 1 s, rebalance 4 s);
2. restart: B is killed and restarted at once with its group instance id and state directory
   (a restarted pod): it takes the partition back at once and restores the tables from the
   changelogs (tables are always restored so: docs/kafka.md, delivery guarantees).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from bench.common import accepted_case, machine
from bench.kafka import _committed, _end_offsets
from permitwatch.models.common import LEGAL_TZ
from permitwatch.streams.kafka.reference import publish_reference
from permitwatch.streams.kafka.topology import Topology, ensure_topics
from permitwatch.streams.simulation.sample_catalog import SAMPLE_CATALOG
from tests.brokers import WorkerProcess, produce, start

JUDGING = "judging events partition 0"
GIVE_UP_SECONDS = 900


def _judging_since(worker: WorkerProcess, offset: int) -> bool:
    with worker.log.open("rb") as log:
        log.seek(offset)
        return JUDGING.encode() in log.read()


def _until_judging(worker: WorkerProcess, offset: int, since: float) -> float:
    while not _judging_since(worker, offset):
        if worker.process.poll() is not None:
            raise SystemExit(f"{worker.name} exited; log in {worker.log}")
        if time.monotonic() - since > GIVE_UP_SECONDS:
            raise SystemExit(f"{worker.name} did not judge the partition within {GIVE_UP_SECONDS} s")
        time.sleep(0.1)
    return time.monotonic() - since


def run(cases: int, broker_name: str = "noida-db", keep: bool = False) -> dict:
    directory = Path(tempfile.mkdtemp(prefix="permitwatch-bench-failover-"))
    broker = start(broker_name, directory / broker_name)
    topology = Topology("failover", 1)
    item = SAMPLE_CATALOG.items[0]
    first = datetime(2026, 3, 2, 9, tzinfo=LEGAL_TZ)
    try:
        asyncio.run(ensure_topics(broker.bootstrap, topology))
        options = {"max_batch_size": broker.max_batch_size} if broker.max_batch_size else {}
        asyncio.run(publish_reference(broker.bootstrap, topology, SAMPLE_CATALOG, [], options))
        records = [(f"FO-{n}".encode(), line) for n in range(cases)
                   for line in accepted_case(f"FO-{n}", item, first + timedelta(seconds=n))]
        asyncio.run(produce(broker, topology.events, records))
        produced = asyncio.run(_end_offsets(broker.bootstrap, topology.events, 1))
        clock = (first + timedelta(seconds=cases, hours=1)).isoformat()
        a, b = (WorkerProcess(broker, directory, "failover", 1, clock, name=name, instance=name, standby=1)
                for name in ("worker-a", "worker-b"))
        a.start()
        loading = time.monotonic()
        while asyncio.run(_committed(broker.bootstrap, "failover-workers", topology.events, 1))[0] < produced[0]:
            time.sleep(2)
        load_seconds = time.monotonic() - loading
        b.start()
        time.sleep(30)  # B joins, takes the standby and reads the changelog up to date
        owner, other = (a, b) if JUDGING in a.log.read_text(errors="replace") else (b, a)
        offset = other.log.stat().st_size
        killed = time.monotonic()
        owner.kill()
        replacement = _until_judging(other, offset, killed)
        offset = other.log.stat().st_size
        killed = time.monotonic()
        other.kill()
        other.start()
        restart = _until_judging(other, offset, killed)
        for worker in (a, b):
            worker.kill()
    finally:
        broker.stop()
        if not keep:
            shutil.rmtree(directory, ignore_errors=True)
    return {"cases": cases, "broker": broker_name, "load_seconds": load_seconds,
            "replacement_seconds": replacement, "restart_seconds": restart}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--broker", choices=["noida-db", "tansu"], default="noida-db")
    parser.add_argument("--keep", action="store_true", help="keep the broker data and worker logs")
    args = parser.parse_args(argv)
    result = run(args.cases, args.broker, args.keep)
    print(f"machine: {machine()}; broker {args.broker}")
    print(f"{result['cases']:,} open cases in one partition (judged in {result['load_seconds']:.0f} s)")
    print(f"failover: replacement by the standby's worker {result['replacement_seconds']:.1f} s after kill -9, "
          f"restarted worker {result['restart_seconds']:.1f} s (target 15 s)")
    return result


if __name__ == "__main__":
    main()
