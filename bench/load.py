"""Memory per open case, and the embedded runtime under sustained load.

    python -m bench.load memory [--cases N]      # engine state: RSS and checkpoint bytes per open case
    python -m bench.load retired [--cases N]     # the same per retired case (closed, past its retention)
    python -m bench.load sustained [--cases N]   # `permitwatch run` taking N open cases over HTTP

`sustained` posts open cases (submitted and accepted, deadlines weeks away) in NDJSON batches of
1,000 events as fast as the server takes them, and reports the rate and the server's resident
memory every 10% of the way. Before them it posts 2,000 on-the-spot cases left undecided, whose
PW-009 deadline is the midnight the server's clock reaches about two minutes into the load: their
alerts measure deadline latency while the load runs."""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from bench.common import accepted_case, percentiles
from permitwatch.streams import state_codec
from permitwatch.streams.simulation.sample_catalog import SAMPLE_CATALOG

DAY = "2026-03-02"


def _case_events(case_id: str, item, number: int) -> list[bytes]:
    """Accepted during office hours on DAY, spread by `number`."""
    return accepted_case(case_id, item, datetime.fromisoformat(f"{DAY}T09:00:00+08:00")
                         + timedelta(seconds=number % 28_000))


def _open_item():
    return next(i for i in SAMPLE_CATALOG.items
                if not i.on_the_spot and not i.quantity_limited and not i.hearing_required)


def _rss_bytes(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def memory(cases: int) -> dict:
    """Run in a fresh process (`python -m bench.load memory`) so the baseline is clean."""
    from permitwatch.alerts.clock import WorkingCalendar
    from permitwatch.alerts.engine import Engine
    from permitwatch.models.events import parse_event
    from permitwatch.models.settings import RuleSettings

    engine = Engine(SAMPLE_CATALOG.by_code(), WorkingCalendar(), RuleSettings(), log_wide_ids=False)
    item = _open_item()
    warm = 1_000
    for n in range(warm):
        for raw in _case_events(f"W-{n}", item, n):
            engine.process(parse_event(raw), raw=raw)
    gc.collect()
    before = _rss_bytes()
    for n in range(cases):
        for raw in _case_events(f"M-{n:07d}", item, n):
            engine.process(parse_event(raw), raw=raw)
    gc.collect()
    after = _rss_bytes()
    state = len(state_codec.dumps_engine(engine.state()))
    return {"open_cases": engine.open_cases, "rss_bytes_per_case": (after - before) / cases,
            "checkpoint_bytes_per_case": state / engine.open_cases}


def retired(cases: int) -> dict:
    """Cases decided, licensed and published, then the clock past their retention: the memory the
    embedded monitor keeps per retired case (`streams.retired.CompactCases`)."""
    from permitwatch.alerts.clock import WorkingCalendar
    from permitwatch.alerts.engine import Engine
    from permitwatch.models.events import parse_event
    from permitwatch.models.settings import RuleSettings
    from permitwatch.streams.retired import CompactCases

    store = CompactCases()
    engine = Engine(SAMPLE_CATALOG.by_code(), WorkingCalendar(), RuleSettings(), log_wide_ids=False, retired=store)
    item = _open_item()
    start = datetime.fromisoformat(f"{DAY}T09:00:00+08:00")

    def closed_case(case_id: str, number: int) -> list[bytes]:
        submitted = start + timedelta(seconds=number % 28_000)
        events = accepted_case(case_id, item, submitted)
        for kind, after, data in (("decision.made", 5, {"outcome": "grant", "officer": "o-9", "remedies_notified": True}),
                                  ("licence.issued", 6, {"licence_no": f"L-{case_id}"}),
                                  ("result.published", 7, {"channel": "web"})):
            events.append(json.dumps({"specversion": "1.0", "id": f"{case_id}-{kind}", "source": "/bench",
                                      "type": f"cn.gov.licensing.{kind}", "subject": case_id, "data": data,
                                      "time": (submitted + timedelta(days=after)).isoformat()}).encode())
        return events

    def load(prefix: str, count: int) -> None:
        for n in range(count):
            for raw in closed_case(f"{prefix}-{n:07d}", n):
                engine.process(parse_event(raw), raw=raw)

    load("R", cases)
    engine.advance(start + timedelta(days=800))
    # The store's own objects: the process's resident size keeps the arenas the open cases used
    # before they retired, which says nothing about what retiring costs.
    held = sys.getsizeof(store._packed) + sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in store._packed.items())
    return {"retired_cases": len(store), "open_cases": engine.open_cases, "held_bytes_per_case": held / len(store),
            "compressed_bytes_per_case": store.size_bytes / len(store)}


def sustained(cases: int, probes: int = 2_000) -> dict:
    from bench.run import Server

    item = _open_item()
    spot = next(i for i in SAMPLE_CATALOG.items if i.on_the_spot)
    due = datetime.fromisoformat("2026-03-03T00:00:00+08:00")
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp), (due - timedelta(seconds=120)).isoformat())
        samples: list[tuple[int, float, int]] = []
        try:
            probe_lines = [line for n in range(probes) for line in _case_events(f"P-{n:05d}", spot, n)]
            for start in range(0, len(probe_lines), 1000):
                server.request("POST", "/events", b"\n".join(probe_lines[start:start + 1000]))
            baseline = _rss_bytes(server.process.pid)
            started = time.perf_counter()
            step = max(cases // 10, 500)
            posted = 0
            while posted < cases:
                lines = [line for n in range(posted, posted + 500) for line in _case_events(f"L-{n:07d}", item, n)]
                status, body = server.request("POST", "/events", b"\n".join(lines))
                if status != 202:
                    raise RuntimeError(f"{status}: {body[:300]!r}")
                posted += 500
                if posted % step == 0:
                    samples.append((posted, time.perf_counter() - started, _rss_bytes(server.process.pid)))
            elapsed = time.perf_counter() - started
            latencies = server.latencies("PW-009", due)
        finally:
            server.stop()
    if len(latencies) < probes:
        raise RuntimeError(f"only {len(latencies)} of {probes} deadlines fired")
    p50, p99 = percentiles(latencies)
    return {"open_cases": cases + probes, "events": 2 * cases, "seconds": elapsed, "events_per_s": 2 * cases / elapsed,
            "baseline_rss": baseline, "samples": samples,
            "rss_bytes_per_case": (samples[-1][2] - baseline) / cases,
            "deadline_p50_s": p50, "deadline_p99_s": p99}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["memory", "retired", "sustained"])
    parser.add_argument("--cases", type=int)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.what == "memory":
        result = memory(args.cases or 200_000)
        text = (f"open cases {result['open_cases']:,}: {result['rss_bytes_per_case']:,.0f} bytes resident and "
                f"{result['checkpoint_bytes_per_case']:,.0f} bytes of checkpoint per open case")
    elif args.what == "retired":
        result = retired(args.cases or 100_000)
        text = (f"retired cases {result['retired_cases']:,} (open {result['open_cases']}): "
                f"{result['held_bytes_per_case']:,.0f} bytes held per retired case, of which "
                f"{result['compressed_bytes_per_case']:,.0f} bytes the compressed state")
    else:
        result = sustained(args.cases or 1_000_000)
        rows = [f"  {n:>9,} cases  {t:7.1f} s  {2 * n / t:8,.0f} events/s  RSS {r / 2**20:8,.0f} MiB"
                for n, t, r in result["samples"]]
        text = "\n".join([
            f"sustained ingest: {result['events']:,} events ({result['open_cases']:,} open cases) in "
            f"{result['seconds']:.0f} s = {result['events_per_s']:,.0f} events/s; "
            f"{result['rss_bytes_per_case']:,.0f} bytes resident per open case "
            f"(baseline {result['baseline_rss'] / 2**20:,.0f} MiB)",
            *rows,
            f"deadline firing under load: p50 {result['deadline_p50_s']:.3f} s, p99 {result['deadline_p99_s']:.3f} s"])
    print(json.dumps(result) if args.json else text)
    return result


if __name__ == "__main__":
    main()
