"""Fail-over of a Kafka worker after kill -9, with one events partition holding N open cases.

    python -m bench.failover [--cases N] [--broker noida-db|tansu] [--store rocksdb|memory]
                             [--membership static|dynamic] [--keep]

Produces N submitted-and-accepted cases to a one-partition deployment and lets worker A judge
them (worker B runs beside it with a standby copy of the tables). Then, each timed from the
kill -9 until the successor logs that it judges the partition again (its first record after
taking the partition, a tick at the latest one second later):

1. replacement: the owner is killed; the other worker, holding the standby, takes the partition
   once the broker evicts the dead member (the tests' group settings: session timeout 10 s,
   heartbeat 1 s, rebalance 4 s), or not within `REPLACEMENT_WAIT_SECONDS`;
2. restart: the worker that judges the partition then (the replacement, or else the killed one)
   is restarted at once with its group instance id and state directory, as a restarted pod is,
   and timed until a worker (it, or the other, to which faust may give the partition) judges the
   partition again: with RocksDB (the default, as deploy/k8s runs) after restoring the changelog
   past what its files hold, with the memory store after restoring the whole changelog.
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
from bench.kafka import _record_counts
from permitwatch.models.common import LEGAL_TZ
from permitwatch.streams.kafka.reference import publish_reference
from permitwatch.streams.kafka.topology import Topology, ensure_topics
from permitwatch.streams.simulation.sample_catalog import SAMPLE_CATALOG
from tests.brokers import WorkerProcess, committed, produce, start

JUDGING = "judging events partition 0"
GIVE_UP_SECONDS = 900
REPLACEMENT_WAIT_SECONDS = 60


def _judging_since(worker: WorkerProcess, offset: int) -> bool:
    with worker.log.open("rb") as log:
        log.seek(offset)
        return JUDGING.encode() in log.read()


def _until_judged(workers: list[WorkerProcess], since: float, limit: float = GIVE_UP_SECONDS) -> float | None:
    """Seconds from `since` until one of the live `workers` logs that it judges the partition
    (faust gives it to whom it chooses: a restarted worker or the standby's), or None after `limit`."""
    offsets = {worker.name: worker.log.stat().st_size for worker in workers}
    while not any(_judging_since(worker, offsets[worker.name]) for worker in workers):
        if time.monotonic() - since > limit:
            return None
        time.sleep(0.1)
    return time.monotonic() - since


def _last_judged(worker: WorkerProcess) -> str:
    """The log time of the worker's latest start of judging the partition ("" if none)."""
    lines = [line for line in worker.log.read_text(errors="replace").splitlines() if JUDGING in line]
    return lines[-1][:25] if lines else ""


def run(cases: int, broker_name: str = "noida-db", store: str = "rocksdb", keep: bool = False,
        membership: str = "static") -> dict:
    """`membership`: static (a group instance id per worker, as deploy/k8s runs them) or dynamic."""
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
        produced = asyncio.run(_record_counts(broker, [topology.events]))
        clock = (first + timedelta(seconds=cases, hours=1)).isoformat()
        a, b = (WorkerProcess(broker, directory, "failover", 1, clock, name=name, store=store,
                              instance=name if membership == "static" else None, standby=1)
                for name in ("worker-a", "worker-b"))
        a.start()
        loading = time.monotonic()
        while asyncio.run(committed(broker, "failover-workers", topology.events, 1))[0] < produced:
            time.sleep(2)
        load_seconds = time.monotonic() - loading
        b.start()
        time.sleep(30)  # B joins, takes the standby and reads the changelog up to date
        owner, other = (a, b) if _last_judged(a) > _last_judged(b) else (b, a)
        killed = time.monotonic()
        owner.kill()
        replacement = _until_judged([other], killed, REPLACEMENT_WAIT_SECONDS)
        if replacement is not None:
            owner, other = other, owner
            owner.kill()
        # The owner is dead: timed as if restarted the moment it died.
        killed = time.monotonic()
        owner.start()
        restart = _until_judged([owner, other], killed)
        if restart is None:
            raise SystemExit(f"the restarted worker did not judge within {GIVE_UP_SECONDS} s; logs in {directory}")
        for worker in (a, b):
            worker.kill()
    finally:
        broker.stop()
        if not keep:
            shutil.rmtree(directory, ignore_errors=True)
    return {"cases": cases, "broker": broker_name, "store": store, "membership": membership,
            "load_seconds": load_seconds,
            "replacement_seconds": replacement, "restart_seconds": restart}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--broker", choices=["noida-db", "tansu"], default="noida-db")
    parser.add_argument("--store", choices=["rocksdb", "memory"], default="rocksdb")
    parser.add_argument("--membership", choices=["static", "dynamic"], default="static",
                        help="group membership of the workers (static: a group instance id each, as deploy/k8s)")
    parser.add_argument("--keep", action="store_true", help="keep the broker data and worker logs")
    args = parser.parse_args(argv)
    result = run(args.cases, args.broker, args.store, args.keep, args.membership)
    print(f"machine: {machine()}; broker {args.broker}; store {args.store}; {args.membership} membership")
    print(f"{result['cases']:,} open cases in one partition (judged in {result['load_seconds']:.0f} s)")
    replacement = result["replacement_seconds"]
    print("failover: replacement by the standby's worker " +
          (f"{replacement:.1f} s after kill -9" if replacement is not None
           else f"none within {REPLACEMENT_WAIT_SECONDS} s (the broker did not evict the killed member)") +
          f"; restarted worker {result['restart_seconds']:.1f} s after its kill -9 (target 15 s)")
    return result


if __name__ == "__main__":
    main()
