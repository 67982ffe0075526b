"""Loading history (last year's cases) into the embedded monitor's database, for an audit.

The records become events (realdata CSV, or a government feed through a mapping file), sorted by
time and fed in batches on a clock that follows them, as `replay` does; the database then serves
the audit through `permitwatch run`."""

from __future__ import annotations

from datetime import datetime, timedelta

from permitwatch.models.views import HistoryReport
from permitwatch.streams.clocks import ManualClock
from permitwatch.streams.embedded.monitor import EmbeddedMonitor, MonitorOptions
from permitwatch.streams.inputs.readers import Record, untimed
from permitwatch.streams.port import RawInput

HISTORY = MonitorOptions(max_future_skew=timedelta(days=36500), warn_of_history=False)
"""Monitor options for loading history: events run ahead of the clock by design."""


def import_events(monitor: EmbeddedMonitor, clock: ManualClock, events: list[tuple[datetime | None, Record]],
                  until: datetime | None = None, batch: int = 2000) -> HistoryReport:
    """Feed events in time order, as `replay` does: the clock stands at each batch's first event
    time and follows the events through the batch (the monitor must admit events ahead of its
    clock: see `HISTORY`)."""
    summary = HistoryReport()
    ordered = sorted((pair for pair in events if pair[0] is not None), key=lambda pair: pair[0])
    for index, record in enumerate(record for time, record in events if time is None):
        refusal = untimed(record, index)
        summary.rejected.append(refusal)
        monitor.dead_letter(record.origin, refusal.category, refusal.reason, record.raw)
    for start in range(0, len(ordered), batch):
        chunk = ordered[start : start + batch]
        clock.set(max(clock.now(), chunk[0][0]))
        result = monitor.ingest([RawInput(record.origin, record.raw) for _, record in chunk])
        for rejection in result.rejected:
            summary.rejected.append(rejection.model_copy(update={"index": start + rejection.index,
                                                                 "origin": chunk[rejection.index][1].origin}))
        summary.events += len(chunk)
        summary.accepted += result.accepted
        summary.duplicates += result.duplicates
    if ordered:
        summary.first, summary.last = ordered[0][0], ordered[-1][0]
    if until is not None and until > clock.now():
        clock.set(until)
        monitor.tick()
    return summary
