"""The demo: a simulated city fed into the running monitor on a compressed clock, with the ground
truth of every injected violation written alongside, and the check that compares the two.

Each start of the demo is a run with its own id namespace. The ground truth of a case is known
when the case is generated, before its events are due; after each batch the monitor accepted, the
feeder marks in the ground truth the time of the last event sent. A run stopped (by a restart, or
for good) never sent its cases' later events, and may have stopped with events already due but not
yet sent, so what the ground truth expects of its cases from its last mark on, and what the monitor
found about them then, says nothing about the monitor: the check leaves both out."""

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

RESEND_SECONDS = 5.0
"""How long the demo waits before sending a batch the database did not take again."""


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
                if self.clock.seconds_until(moment) > 0:
                    written = await self._deliver(batch, truth, written)
                    batch = []
                    while self.clock.seconds_until(moment) > 0:
                        await asyncio.sleep(min(self.clock.seconds_until(moment), 1.0))
                batch.append((moment, RawInput("demo", raw)))
                if len(batch) >= 200:
                    written = await self._deliver(batch, truth, written)
                    batch = []

    async def _deliver(self, batch: list[tuple[datetime, RawInput]], truth, written: int) -> int:
        """Send a batch, then write the ground truth of the cases generated so far and the mark
        that the batch was accepted. In this order, a stop at any point leaves no event sent
        without its ground truth before the last mark (the check leaves out what is at or after a
        run's last mark)."""
        if not batch:
            return written
        while True:
            try:
                await asyncio.to_thread(self.monitor.ingest, [raw for _, raw in batch])
                break
            except StoreError as exc:
                # The batch is one transaction: none of it was taken. Dropping it would leave its
                # cases without those events for good, and the demo's check would count the
                # alerts they miss against the engine.
                log.error("demo batch of %s events not accepted (%s): sending it again in %.0f s", len(batch), exc,
                          RESEND_SECONDS)
                await asyncio.sleep(RESEND_SECONDS)
        expectations = self.simulator.ground_truth
        for expected in expectations[written:]:
            truth.write(orjson.dumps(expected.to_json()) + b"\n")
        truth.write(orjson.dumps({"run": self.simulator.namespace, "sent_through": batch[-1][0].isoformat()})
                    + b"\n")
        truth.flush()
        return len(expectations)


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
    """Compare the active alerts in the store with the ground truth the monitor can know by its
    clock.

    Left out on both sides: what is at or after a run's last mark (see the module's note), and what the
    monitor concluded from the cases of another run (a quantity-limited item's order of acceptance
    spans the runs; each run's ground truth knows only its own cases)."""
    clock_text = store.meta("clock")
    clock = datetime.fromisoformat(clock_text) if clock_text else None
    expected: set[tuple] = set()
    sent_through: dict[str, datetime | None] = {}
    for line in truth_path.read_bytes().splitlines():
        record = orjson.loads(line)
        if "run" in record:
            sent = record.get("sent_through")
            sent_through[record["run"]] = datetime.fromisoformat(sent) if sent else None
            continue
        known = datetime.fromisoformat(record.get("known", record["at"]))
        if clock is not None and known <= clock:
            expected.add((record["case_id"], record["rule"], record["signal"], datetime.fromisoformat(record["at"])))
    latest: dict[str, Alert] = {}
    for (raw,) in store.reader.execute("SELECT record FROM alerts ORDER BY seq"):
        alert = Alert.model_validate_json(raw)
        latest[alert.alert_id] = alert
    runs = _Runs(sent_through)
    found: set[tuple] = set()
    left_out: set[tuple] = set()
    for alert in latest.values():
        if alert.status != "active":
            continue
        key = (alert.case_id, alert.rule, alert.signal, alert.detected_at)
        run = runs.of(alert.case_id)
        (left_out if any(runs.of(event_id) != run for event_id in alert.evidence) else found).add(key)
    expected = {key for key in expected - left_out if not runs.cut(key)}
    found = {key for key in found if not runs.cut(key)}
    rules = sorted({key[1] for key in expected | found})
    by_rule_expected = Counter(key[1] for key in expected)
    by_rule_found = Counter(key[1] for key in found)
    by_rule_matched = Counter(key[1] for key in expected & found)
    return clock, [RuleScore(rule, by_rule_expected[rule], by_rule_found[rule], by_rule_matched[rule])
                   for rule in rules]


class _Runs:
    """The demo's runs, told apart by the prefix of their case and event ids, and how far each
    sent its events."""

    def __init__(self, sent_through: dict[str, datetime | None]):
        self.sent_through = sent_through
        self.prefixes = sorted((run for run in sent_through if run), key=len, reverse=True)

    def of(self, identifier: str) -> str:
        return next((prefix for prefix in self.prefixes if identifier.startswith(prefix)), "")

    def cut(self, key: tuple) -> bool:
        """Whether an (case, rule, signal, at) is about a case of a run at or after the run's last
        mark (any time, when the run sent nothing). At the mark itself: a batch is cut at 200
        events, and events of the mark's instant may be in the next one."""
        case_id, at = key[0], key[3]
        run = self.of(case_id)
        if run not in self.sent_through:
            return False
        last = self.sent_through[run]
        return last is None or at >= last


def render(clock: datetime | None, scores: list[RuleScore]) -> str:
    lines = [f"demo clock {clock.isoformat() if clock else '-'}",
             f"{'rule':<8} {'expected':>8} {'found':>6} {'matched':>7} {'precision':>9} {'recall':>7}"]
    for s in scores:
        lines.append(f"{s.rule:<8} {s.expected:>8} {s.found:>6} {s.matched:>7} {s.precision:>9.3f} {s.recall:>7.3f}")
    return "\n".join(lines)
