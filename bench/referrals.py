"""Referral versions: cost and volume where one department holds every case.

    python -m bench.referrals [--cases N] [--city-cases N] [--applications N]

Generates the same cases twice: all in one department with five officers (the shape real permit
logs have: a building-permit office), and spread over 50 departments with five officers each. A
third of the cases are decided after the statutory limit (a red PW-001 each, hence a referral).
Replays both, and the city simulator, and prints replay time, the ratio of the two replay times,
and versions per referral (median, p99, max).

Targets (issue 15): ratio ≤ 1.3; median ≤ 3 and max ≤ 10 versions per referral on the crowded log
and on the city simulator.

Then one quantity-limited item (PW-013 compares its cases with each other), N and 2N applications
waiting together and granted in order of acceptance but for four granted ahead of those waiting
(`item_log`): the ratio of the two replay times says how the city stage's work grows with an
item's cases (2 when it grows with them, 4 with their square, as it did until 2026-12-02)."""

from __future__ import annotations

import argparse
import io
import json
import random
import statistics
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import orjson

from bench.common import CACHE, machine

START = datetime.fromisoformat("2026-01-05T09:00:00+08:00")
ITEM = "SZ-SAMR-001"  # 20 working days


def department_log(cases: int, departments: int, seed: int = 7) -> Path:
    """Each case: submitted, accepted, reviewed, decided (a third after the statutory limit), the
    licence issued and the decision published, in time order. The same random draws whatever `departments` is: only the department and officer
    names differ."""
    path = CACHE / f"departments-{cases}-{departments}-{seed}-v2.jsonl"
    if path.exists():
        return path
    rng = random.Random(seed)
    timed: list[tuple[datetime, bytes]] = []
    for n in range(cases):
        case_id = f"BP-{n:06d}"
        department = f"D-{n % departments:02d}" if departments > 1 else "D-BUILDING"
        staff = [f"{department}-o{k}" for k in range(5)]
        submitted = START + timedelta(hours=n * 1.5 + rng.random())
        handler, reviewer, approver = rng.sample(staff, 3)
        late = rng.random() < 1 / 3
        decided = submitted + timedelta(days=rng.randint(40, 60) if late else rng.randint(5, 20), hours=2)
        events = [
            (submitted, "application.submitted", {"item_code": ITEM, "department": department,
                                                  "applicant_id": f"A-{n}", "channel": "window",
                                                  "materials": ["M-ID", "M-FORM"], "officer": handler}),
            (submitted + timedelta(hours=1), "application.accepted", {"receipt_no": f"R-{n}", "officer": handler}),
            (submitted + timedelta(days=3), "step.completed", {"step": "review", "officer": reviewer,
                                                               "action": "pass"}),
            (decided, "decision.made", {"outcome": "grant", "officer": approver, "remedies_notified": True}),
            (decided + timedelta(days=2), "licence.issued", {"licence_no": f"L-{n}"}),
            (decided + timedelta(days=2, hours=1), "result.published", {"channel": "web"}),
        ]
        timed += _lines(case_id, events)
    return _written(path, timed)


def item_log(applications: int, seed: int = 7) -> Path:
    """`applications` accepted on one quantity-limited item over 20 days, all waiting until day 21,
    then granted in order of acceptance, as far apart as they were accepted; but four of them,
    granted the day after their acceptance, ahead of every application accepted before (a PW-013
    finding each: their number grows with the applications, not with their square)."""
    path = CACHE / f"item-{applications}-{seed}-v1.jsonl"
    if path.exists():
        return path
    rng = random.Random(seed)
    timed: list[tuple[datetime, bytes]] = []
    step = timedelta(days=20) / applications
    ahead = {applications * k // 5 for k in range(1, 5)}
    for n in range(applications):
        case_id = f"TX-{n:06d}"
        submitted = START + step * n
        decided = submitted + timedelta(days=1) if n in ahead else START + timedelta(days=21) + step * n
        officer = f"D-TRANSPORT-o{rng.randrange(5)}"
        timed += _lines(case_id, [
            (submitted, "application.submitted", {"item_code": "SZ-TRANSPORT-001", "department": "SZ-TRANSPORT",
                                                  "applicant_id": f"A-{n}", "channel": "window",
                                                  "materials": ["ID", "BL", "APP", "VEH"], "officer": officer}),
            (submitted + timedelta(minutes=30), "application.accepted", {"receipt_no": f"R-{n}", "officer": officer}),
            (decided, "decision.made", {"outcome": "grant", "officer": officer, "remedies_notified": True}),
            (decided + timedelta(hours=1), "licence.issued", {"licence_no": f"L-{n}"}),
            (decided + timedelta(hours=2), "result.published", {"channel": "web"}),
        ])
    return _written(path, timed)


def _lines(case_id: str, events: list[tuple[datetime, str, dict]]) -> list[tuple[datetime, bytes]]:
    return [(moment, orjson.dumps({
        "specversion": "1.0", "id": f"{case_id}-{k}", "source": "/bench/departments",
        "type": f"cn.gov.licensing.{kind}", "time": moment.isoformat(), "subject": case_id, "data": data}))
        for k, (moment, kind, data) in enumerate(events)]


def _written(path: Path, timed: list[tuple[datetime, bytes]]) -> Path:
    """The events in time order, as JSON lines, at `path` (complete or not at all)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    timed.sort(key=lambda pair: pair[0])
    partial = path.with_suffix(".partial")
    partial.write_bytes(b"".join(line + b"\n" for _, line in timed))
    partial.rename(path)
    return path


def city_log(cases: int, seed: int = 1) -> Path:
    from permitwatch.streams.simulation.city import CitySimulator

    path = CACHE / f"city-sim-{cases}-{seed}.jsonl"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_bytes(b"".join(raw + b"\n" for _, raw in CitySimulator(seed=seed).events(cases=cases)))
        partial.rename(path)
    return path


def replayed(path: Path) -> dict:
    """Replay time and the versions per referral."""
    from permitwatch.alerts.clock import WorkingCalendar
    from permitwatch.alerts.engine import Engine
    from permitwatch.models.settings import RuleSettings
    from permitwatch.streams.inputs.readers import read_jsonl
    from permitwatch.streams.replay import replay
    from permitwatch.streams.simulation.sample_catalog import SAMPLE_CATALOG
    from permitwatch.streams.tuning import tune_gc

    tune_gc()
    engine = Engine(SAMPLE_CATALOG.by_code(), WorkingCalendar(), RuleSettings())
    referrals = io.BytesIO()
    started = time.perf_counter()
    summary = replay(read_jsonl([path]), engine, io.BytesIO(), io.BytesIO(), referrals_out=referrals)
    seconds = time.perf_counter() - started
    versions = Counter(orjson.loads(line)["referral_id"] for line in referrals.getvalue().splitlines())
    counts = sorted(versions.values()) or [0]
    return {"events": summary.records, "seconds": seconds, "events_per_s": summary.records / seconds,
            "referrals": len(versions), "versions": sum(counts), "median": statistics.median(counts),
            "p99": counts[min(len(counts) - 1, int(len(counts) * 0.99))], "max": counts[-1],
            "referrals_bytes": len(referrals.getvalue())}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=12_000)
    parser.add_argument("--city-cases", type=int, default=16_000)
    parser.add_argument("--applications", type=int, default=2_500, help="N: one item's applications (and 2N)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    crowded = replayed(department_log(args.cases, 1))
    spread = replayed(department_log(args.cases, 50))
    city = replayed(city_log(args.city_cases))
    item, item_twice = replayed(item_log(args.applications)), replayed(item_log(2 * args.applications))
    result = {"crowded": crowded, "spread": spread, "city": city, "ratio": crowded["seconds"] / spread["seconds"],
              "item": item, "item_twice": item_twice, "item_ratio": item_twice["seconds"] / item["seconds"]}
    if args.json:
        print(json.dumps(result))
        return result
    print(f"machine   {machine()}")
    for name, figures in (("crowded", crowded), ("spread", spread), ("city", city), ("item", item),
                          ("item 2N", item_twice)):
        print(f"{name:<9} {figures['events']:,} events in {figures['seconds']:.2f} s ({figures['events_per_s']:,.0f}/s); "
              f"{figures['referrals']:,} referrals, {figures['versions']:,} versions "
              f"({figures['referrals_bytes'] / 1e6:.1f} MB): per referral median {figures['median']}, "
              f"p99 {figures['p99']}, max {figures['max']}")
    print(f"referrals: crowded/spread replay time {result['ratio']:.2f} (target ≤ 1.3); versions per referral "
          f"median {crowded['median']}/{city['median']} and max {crowded['max']}/{city['max']} crowded/city "
          "(targets ≤ 3 and ≤ 10)")
    print(f"one item: {args.applications:,} and {2 * args.applications:,} applications in {item['seconds']:.2f} and "
          f"{item_twice['seconds']:.2f} s, ratio {result['item_ratio']:.2f} (2 if the work grows with the cases, "
          "4 with their square)")
    return result


if __name__ == "__main__":
    main()
