"""Shared helpers for the benchmarks: generated logs (cached), machine description."""

from __future__ import annotations

import os
import platform
from datetime import datetime, timedelta
from pathlib import Path

import orjson

CACHE = Path(__file__).resolve().parent / ".cache"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()} ({platform.machine()})"


def anchor_loop(lines: list[bytes], rounds: int = 3) -> float:
    """Lines per second of a plain loop over `lines` doing the least an event needs (decode its
    JSON, note its case), best of `rounds`: the anchor the throughputs are stated against, since
    this machine's speed moves by tens of percent between runs."""
    import time

    best = float("inf")
    for _ in range(rounds):
        seen: dict[str, int] = {}
        started = time.perf_counter()
        for line in lines:
            event = orjson.loads(line)
            seen[event["subject"]] = seen.get(event["subject"], 0) + 1
        best = min(best, time.perf_counter() - started)
    return len(lines) / best


def generated_log(events: int, seed: int = 1, cases_per_day: int = 400, violation_rate: float = 0.1) -> Path:
    """A JSON-lines log of at least `events` simulated events, generated once and cached."""
    from permitwatch.streams.simulation.city import CitySimulator

    path = CACHE / f"city-{seed}-{cases_per_day}-{violation_rate}-{events}.jsonl"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    sim = CitySimulator(seed=seed, violation_rate=violation_rate, cases_per_day=cases_per_day)
    partial = path.with_suffix(".partial")
    written = 0
    cases = max(1, events // 7)
    with partial.open("wb") as out:
        while written < events:
            for _, raw in sim.events(cases=cases):
                out.write(raw + b"\n")
                written += 1
            cases = max(1, (events - written) // 7 + 1)
    partial.rename(path)
    return path


def accepted_case(case_id: str, item, submitted: datetime) -> list[bytes]:
    """The two events of a case submitted at `submitted` and accepted ten minutes later."""
    data = {"item_code": item.item_code, "department": item.department, "applicant_id": f"A-{case_id}",
            "channel": "window", "materials": [m.code for m in item.materials], "officer": "o-1"}
    return [orjson.dumps({"specversion": "1.0", "id": f"{case_id}-{n}", "source": "/bench", "time": moment.isoformat(),
                          "type": f"cn.gov.licensing.{kind}", "subject": case_id, "data": data})
            for n, (kind, moment, data) in enumerate((
                ("application.submitted", submitted, data),
                ("application.accepted", submitted + timedelta(minutes=10),
                 {"receipt_no": f"R-{case_id}", "officer": "o-1"})))]


def percentiles(values: list[float]) -> tuple[float, float]:
    """p50 and p99 of `values` (sorted)."""
    return values[len(values) // 2], values[min(len(values) - 1, int(0.99 * len(values)))]
