"""The demo: a simulated city fed into the running monitor on a compressed clock, with the ground
truth of every injected violation written alongside, and the check that compares the two.

Each start of the demo is a run with its own id namespace, and marks in the ground truth when it
began. A run stopped by a restart never sent its cases' later events, so what the ground truth
expects of them after the restart, and what the monitor found about them then, says nothing about
the monitor: the check leaves both out."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson

from permitwatch.models.alerts import Alert
from permitwatch.streams.clocks import Clock
from permitwatch.streams.embedded.monitor import EmbeddedMonitor
from permitwatch.streams.port import RawInput
from permitwatch.streams.simulation.city import CitySimulator
from permitwatch.streams.store import Store, StoreError

log = logging.getLogger("permitwatch.demo")



class DemoFeeder:
    """Feeds each simulated event when the clock reaches its time (in small batches)."""

    def __init__(self, monitor: EmbeddedMonitor, clock: Clock, simulator: CitySimulator, truth_path: Path):
        self.monitor = monitor
        self.clock = clock
        self.simulator = simulator
        self.truth_path = truth_path

    async def run(self) -> None:
        written = 0
        batch: list[RawInput] = []
        with self.truth_path.open("ab") as truth:
            truth.write(orjson.dumps({"run": self.simulator.namespace, "started": self.clock.now().isoformat()})
                        + b"\n")
            for moment, raw in self.simulator.events():
                wait = self.clock.seconds_until(moment)
                if wait > 0:
                    written = self._flush_truth(truth, written)
                    await self._send(batch)
                    batch = []
                    await asyncio.sleep(min(wait, 1.0))
                    while self.clock.seconds_until(moment) > 0:
                        await asyncio.sleep(min(self.clock.seconds_until(moment), 1.0))
                batch.append(RawInput("demo", raw))
                if len(batch) >= 200:
                    await self._send(batch)
                    batch = []

    def _flush_truth(self, handle, written: int) -> int:
        expectations = self.simulator.ground_truth
        for expected in expectations[written:]:
            handle.write(orjson.dumps(expected.to_json()) + b"\n")
        handle.flush()
        return len(expectations)

    async def _send(self, batch: list[RawInput]) -> None:
        if not batch:
            return
        try:
            await asyncio.to_thread(self.monitor.ingest, batch)
        except StoreError as exc:
            log.error("demo batch not accepted: %s", exc)


@dataclass
class RuleScore:
    rule: str
    expected: int
    found: int
    matched: int

    @property
    def precision(self) -> float:
        return self.matched / self.found if self.found else 1.0

    @property
    def recall(self) -> float:
        return self.matched / self.expected if self.expected else 1.0


def check(store: Store, truth_path: Path) -> tuple[datetime | None, list[RuleScore]]:
    """Compare the active alerts in the store with the ground truth due by the monitor's clock."""
    clock_text = store.meta("clock")
    clock = datetime.fromisoformat(clock_text) if clock_text else None
    expected: set[tuple] = set()
    starts: list[tuple[datetime, str]] = []
    for line in truth_path.read_bytes().splitlines():
        record = orjson.loads(line)
        if "run" in record:
            starts.append((datetime.fromisoformat(record["started"]), record["run"]))
            continue
        at = datetime.fromisoformat(record["at"])
        if clock is not None and at <= clock:
            expected.add((record["case_id"], record["rule"], record["signal"], at))
    latest: dict[str, Alert] = {}
    for (raw,) in store.reader.execute("SELECT record FROM alerts ORDER BY seq"):
        alert = Alert.model_validate_json(raw)
        latest[alert.alert_id] = alert
    found = {(a.case_id, a.rule, a.signal, a.detected_at) for a in latest.values() if a.status == "active"}
    cut = _cut_off(starts)
    expected = {key for key in expected if not cut(key)}
    found = {key for key in found if not cut(key)}
    rules = sorted({key[1] for key in expected | found})
    by_rule_expected = Counter(key[1] for key in expected)
    by_rule_found = Counter(key[1] for key in found)
    by_rule_matched = Counter(key[1] for key in expected & found)
    return clock, [RuleScore(rule, by_rule_expected[rule], by_rule_found[rule], by_rule_matched[rule])
                   for rule in rules]


def _cut_off(starts: list[tuple[datetime, str]]):
    """Whether an (case, rule, signal, at) is about a case of a run the next run cut short, after
    the cut."""
    ends = {run: later for (_, run), (later, _) in zip(sorted(starts), sorted(starts)[1:], strict=False)}
    prefixes = sorted((run for run in ends if run), key=len, reverse=True)

    def cut(key: tuple) -> bool:
        case_id, at = key[0], key[3]
        run = next((prefix for prefix in prefixes if case_id.startswith(prefix)), "")
        return run in ends and at > ends[run]

    return cut


def render(clock: datetime | None, scores: list[RuleScore]) -> str:
    lines = [f"demo clock {clock.isoformat() if clock else '-'}",
             f"{'rule':<8} {'expected':>8} {'found':>6} {'matched':>7} {'precision':>9} {'recall':>7}"]
    for s in scores:
        lines.append(f"{s.rule:<8} {s.expected:>8} {s.found:>6} {s.matched:>7} {s.precision:>9.3f} {s.recall:>7.3f}")
    return "\n".join(lines)
