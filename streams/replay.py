"""`permitwatch replay`: the deterministic mode (EVENTS.md).

Events are processed in file order as if they arrived in that order. The simulated clock is the
latest event time seen so far; every deadline it passes fires then, whichever case's event moved
it. At the end the clock advances to `until`, and what the city stage held for the clock to pass
the last instant is let through (the file is complete). Same input, same output, byte for byte.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO

from permitwatch.alerts.engine import Emitted, Engine
from permitwatch.models.common import json_line
from permitwatch.models.deadletter import DeadLetter
from permitwatch.models.events import InvalidEvent, parse_event_with_digest
from permitwatch.streams.inputs.readers import Record


@dataclass
class ReplaySummary:
    records: int = 0
    referral_versions: int = 0
    invalid: Counter = field(default_factory=Counter)
    first_time: datetime | None = None
    clock: datetime | None = None

    def render(self, engine: Engine) -> str:
        stats = engine.stats
        lines = [
            f"records read        {self.records}",
            f"events applied      {stats.events}",
            f"duplicates ignored  {stats.duplicates}",
            f"late events         {stats.late_events}",
            f"dead-lettered       {sum(self.invalid.values())}"
            + (f"  ({', '.join(f'{k} {v}' for k, v in sorted(self.invalid.items()))})" if self.invalid else ""),
            f"events, unknown item {stats.unknown_items}",
            f"cases seen          {stats.cases_opened}  (open at the end {engine.open_cases})",
            f"clock               {self.first_time.isoformat() if self.first_time else '-'} → "
            f"{self.clock.isoformat() if self.clock else '-'}",
            f"alerts              {sum(stats.alerts.values())}  retractions {sum(stats.retractions.values())}",
            f"referrals           {len(engine.referrals.referrals)}  (versions {self.referral_versions})",
        ]
        for (rule, signal), count in sorted(stats.alerts.items()):
            retracted = stats.retractions.get(rule, 0)
            lines.append(f"  {rule} {signal:<8} {count:>8}" + (f"  (retracted {retracted})" if retracted else ""))
        return "\n".join(lines)


def replay(
    records: Iterable[Record],
    engine: Engine,
    alerts_out: BinaryIO,
    dead_letters: BinaryIO,
    until: datetime | None = None,
    referrals_out: BinaryIO | None = None,
) -> ReplaySummary:
    """Exemption records (`cn.gov.permitwatch.exemption.recorded`) may be mixed in the event files;
    one for a case without a referral is a dead letter."""
    summary = ReplaySummary()

    def write(emitted: Emitted) -> None:
        for alert in emitted.alerts:
            alerts_out.write(json_line(alert))
        summary.referral_versions += len(emitted.referrals)
        if referrals_out is not None:
            for referral in emitted.referrals:
                referrals_out.write(json_line(referral))
        for refused in emitted.refused:
            dead(refused.origin, refused.raw, refused.category, refused.reason)

    def dead(origin: str, raw: bytes, category: str, reason: str) -> None:
        summary.invalid[category] += 1
        dead_letters.write(json_line(DeadLetter.of(origin, category, reason, raw)))

    for record in records:
        summary.records += 1
        if record.refused is not None:
            dead(record.origin, record.raw, "unmapped", record.refused)
            continue
        try:
            event, digest = parse_event_with_digest(record.raw)
        except InvalidEvent as invalid:
            dead(record.origin, record.raw, invalid.category, invalid.reason)
            continue
        if summary.first_time is None:
            summary.first_time = event.time
        write(engine.process(event, record.origin, record.raw, digest))
    if until is not None:
        write(engine.advance(until))
    write(engine.finish())
    summary.clock = engine.now
    return summary
