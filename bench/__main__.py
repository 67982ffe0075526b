"""Every benchmark behind one command, and a table of what it measured (Markdown, for the README).

    python -m bench [--quick] [--no-kafka] [--load]

--quick: smaller logs (a few minutes in all); --no-kafka: skip the broker; --load: also the
sustained-load run (one million open cases through HTTP: several minutes and ~3 GB of memory).
Each figure comes from the module named in its row, which runs on its own too."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import time
from pathlib import Path

from bench.common import anchor_loop, generated_log, machine

ROOT = Path(__file__).resolve().parent.parent
WABO = ROOT / "tests" / "data" / "realdata" / "wabo_receipt_phase.events.csv.gz"


def wabo_replay() -> tuple[float, int]:
    from permitwatch.alerts.clock import WorkingCalendar
    from permitwatch.alerts.engine import Engine
    from permitwatch.models.settings import RuleSettings
    from permitwatch.streams.inputs.readers import RealdataMapping, read_realdata_csv
    from permitwatch.streams.replay import replay

    engine = Engine({}, WorkingCalendar(), RuleSettings())
    mapping = RealdataMapping()
    started = time.perf_counter()
    summary = replay(read_realdata_csv([WABO], mapping), engine, io.BytesIO(), io.BytesIO())
    return time.perf_counter() - started, mapping.rows or summary.records


def _in_fresh_process(module: str, *args: str) -> dict:
    """A benchmark in a process of its own: the engine ran at half speed in this one, after the
    Kafka and DuckDB benchmarks' imports (cause not pinned down)."""
    done = subprocess.run([sys.executable, "-m", module, *args, "--json"], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout)


def main(argv: list[str] | None = None) -> list[tuple[str, str, str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-kafka", action="store_true")
    parser.add_argument("--load", action="store_true")
    args = parser.parse_args(argv)
    from bench import kafka, peer, run

    sizes = {"engine": 200_000, "durable": 50_000, "deadlines": 2_000, "kafka": 20_000, "peer": 50_000,
             "memory": 50_000} if args.quick else \
        {"engine": 1_000_000, "durable": 200_000, "deadlines": 5_000, "kafka": 100_000, "peer": 200_000,
         "memory": 200_000}
    rows: list[tuple[str, str, str]] = []

    def row(measure: str, figure: str, target: str = "") -> None:
        rows.append((measure, figure, target))
        print(f"  {measure}: {figure}", file=sys.stderr, flush=True)

    print(f"machine: {machine()}", file=sys.stderr)
    anchor_lines = generated_log(sizes["engine"]).read_bytes().splitlines()[:200_000]
    anchors = [anchor_loop(anchor_lines)]

    def speed(events_per_s: float) -> str:
        return f"{events_per_s:,.0f} events/s ({events_per_s / anchors[0]:.3f} of the anchor)"

    row("anchor: a plain loop decoding each event's JSON and counting its case (`bench.common.anchor_loop`)",
        f"{anchors[0]:,.0f} events/s")
    alone = _in_fresh_process("bench.engine", "--events", str(sizes["engine"]))
    row(f"engine: parse + rules + state, one core (`bench.engine`, {alone['events']:,} events)",
        speed(alone["engine_events_per_s"]), "≥ 100,000")
    row("whole `permitwatch replay` of that log (file in, alerts out)", speed(alone["replay_events_per_s"]))
    durable = run.durable_ingest(sizes["durable"])
    row(f"embedded durable ingest over HTTP, NDJSON batches of 1,000, fsync per batch (`bench.run`, "
        f"{sizes['durable']:,} events)", speed(durable), "≥ 20,000")
    p50, p99, fired = run.deadline_latency(sizes["deadlines"])
    row(f"deadline firing latency, {fired:,} deadlines at one midnight (`bench.run`)",
        f"p50 {p50:.3f} s, p99 {p99:.3f} s", "p99 ≤ 1 s")
    if not args.no_kafka:
        worker = kafka.run(sizes["kafka"])
        row(f"one Kafka worker end to end, {worker['partitions']} partitions, {worker['broker']} on the same "
            f"machine (`bench.kafka`, {worker['events']:,} events)",
            f"{speed(worker['events_per_s'])}; {worker['ratio']:.3f} of the broker's raw batched loop "
            f"({worker['raw_records_per_s']:,.0f} records/s)")
    memory = _in_fresh_process("bench.load", "memory", "--cases", str(sizes["memory"]))
    row(f"memory per open case, engine (`bench.load memory`, {memory['open_cases']:,} cases)",
        f"{memory['rss_bytes_per_case']:,.0f} B resident, {memory['checkpoint_bytes_per_case']:,.0f} B checkpointed")
    seconds, rows_read = wabo_replay()
    row(f"replay of the real WABO log ({rows_read:,} rows, realdata CSV)", f"{seconds:.1f} s")
    agreement = peer.compare(generated_log(sizes["peer"]))
    row(f"PW-001 overdue set vs a DuckDB SQL peer (`bench.peer`, {agreement['events']:,} events)",
        f"{'agree' if agreement['agree'] else 'DISAGREE'}: {agreement['overdue_engine']:,} cases "
        f"(SQL {agreement['peer_seconds']:.1f} s)")
    if args.load:
        load = _in_fresh_process("bench.load", "sustained")
        row(f"sustained load: {load['open_cases']:,} open cases through HTTP (`bench.load sustained`)",
            f"{load['events_per_s']:,.0f} events/s, {load['rss_bytes_per_case']:,.0f} B resident per case, "
            f"deadlines p99 {load['deadline_p99_s']:.3f} s")
    anchors.append(anchor_loop(anchor_lines))
    print(f"\nMeasured on {machine()}; the anchor measured {anchors[1]:,.0f} events/s again at the end.\n")
    print("| measure | figure | target |\n|---|---|---|")
    for measure, figure, target in rows:
        print(f"| {measure} | {figure} | {target} |")
    return rows


if __name__ == "__main__":
    main()
