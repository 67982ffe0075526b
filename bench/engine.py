"""Engine throughput: parse + rules + state on one core, over a generated log of ≥ 1M events.

    python -m bench.engine [--events N]

Prints events/s for the engine alone (lines already in memory: parse, rules, state, timers) and
for a whole `permitwatch replay` (reading the file, writing alerts and dead letters)."""

from __future__ import annotations

import argparse
import io
import json
import time

from bench.common import generated_log, machine


def engine_alone(lines: list[bytes]) -> tuple[float, int, int]:
    from permitwatch.alerts.clock import WorkingCalendar
    from permitwatch.alerts.engine import Engine
    from permitwatch.models.events import parse_event
    from permitwatch.models.settings import RuleSettings
    from permitwatch.streams.simulation.sample_catalog import SAMPLE_CATALOG

    engine = Engine(SAMPLE_CATALOG.by_code(), WorkingCalendar(), RuleSettings())
    alerts = 0
    started = time.perf_counter()
    for line in lines:
        alerts += len(engine.process(parse_event(line)).alerts)
    elapsed = time.perf_counter() - started
    return len(lines) / elapsed, alerts, engine.stats.cases_opened


def whole_replay(path) -> float:
    from permitwatch.alerts.clock import WorkingCalendar
    from permitwatch.alerts.engine import Engine
    from permitwatch.models.settings import RuleSettings
    from permitwatch.streams.inputs.readers import read_jsonl
    from permitwatch.streams.replay import replay
    from permitwatch.streams.simulation.sample_catalog import SAMPLE_CATALOG

    engine = Engine(SAMPLE_CATALOG.by_code(), WorkingCalendar(), RuleSettings())
    started = time.perf_counter()
    summary = replay(read_jsonl([path]), engine, io.BytesIO(), io.BytesIO())
    return summary.records / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    from permitwatch.streams.tuning import tune_gc

    path = generated_log(args.events)
    lines = path.read_bytes().splitlines()
    tune_gc()
    rate, alerts, cases = engine_alone(lines)
    replay_rate = whole_replay(path)
    result = {"engine_events_per_s": rate, "replay_events_per_s": replay_rate, "events": len(lines)}
    if args.json:
        print(json.dumps(result))
        return result
    print(f"machine          {machine()}")
    print(f"log              {len(lines):,} events, {cases:,} cases, {alerts:,} alert records ({path.name})")
    print(f"engine alone     {rate:,.0f} events/s  (parse + rules + state, one core)")
    print(f"whole replay     {replay_rate:,.0f} events/s  (file in, alerts out)")
    return result


if __name__ == "__main__":
    main()
