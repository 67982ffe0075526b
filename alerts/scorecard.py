"""Scorecards (绩效评估) per department and item over a period, from case facts and alerts.

Counts are by legal time: a case counts as accepted in the period when its acceptance day (or
deemed acceptance day) falls in it, as decided when its decision does; alerts count by the
instant they became provable. Working days to decision are counted on the legal clock.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, time
from statistics import median

from permitwatch.alerts.case import CaseState
from permitwatch.alerts.clock import LegalClock, local_date
from permitwatch.alerts.rules.base import CaseView, Context
from permitwatch.models.alerts import Alert
from permitwatch.models.common import LEGAL_TZ
from permitwatch.models.events import CloudEvent, ExemptionRecorded, event_key
from permitwatch.models.scorecard import ScorecardRow

ALL_ITEMS = "*"


@dataclass
class _Tally:
    accepted: int = 0
    decided: int = 0
    on_time_statutory: int = 0
    with_promise: int = 0
    on_time_promised: int = 0
    working_days: list[int] = field(default_factory=list)
    alerts: Counter = field(default_factory=Counter)
    referred: set[str] = field(default_factory=set)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _p90(values: list[int]) -> int | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[math.ceil(0.9 * len(ordered)) - 1]


def case_states(events: Iterable[CloudEvent]) -> list[CaseState]:
    """The facts of every case in an event log (duplicates ignored; order does not matter)."""
    cases: dict[str, CaseState] = {}
    for event in events:
        if isinstance(event, ExemptionRecorded):
            continue
        case = cases.get(event.subject)
        if case is None:
            case = cases[event.subject] = CaseState(event.subject)
        key = event_key(event)
        if key not in case.seen:
            case.seen[key] = 0
            case.apply(event)
    return list(cases.values())


def scorecards(
    cases: Iterable[CaseState],
    alerts: Iterable[Alert],
    start: datetime,
    end: datetime,
    ctx: Context,
) -> list[ScorecardRow]:
    """Rows per (department, item) and per department (item '*'), sorted."""
    ctx.now = end
    clock: LegalClock = ctx.clock
    tallies: dict[tuple[str, str], _Tally] = defaultdict(_Tally)

    def both(department: str | None, item: str | None) -> tuple[_Tally, _Tally]:
        department = department or "unknown"
        return tallies[(department, item or "unknown")], tallies[(department, ALL_ITEMS)]

    places: dict[str, tuple[str | None, str | None]] = {}
    for case in cases:
        places[case.case_id] = (case.department, case.item_code)
        view = CaseView(case, ctx)
        anchor = view.anchor
        if anchor is not None and start <= datetime.combine(anchor.day, time(0), LEGAL_TZ) < end:
            for tally in both(case.department, case.item_code):
                tally.accepted += 1
        decision = case.decision
        if decision is None or not start <= decision.time < end or anchor is None:
            continue
        statutory, promised = view.decision_deadline, view.promised_deadline
        days = clock.calendar.count(anchor.day, local_date(decision.time))
        for tally in both(case.department, case.item_code):
            tally.decided += 1
            tally.working_days.append(days)
            if statutory is not None and decision.time < statutory.instant:
                tally.on_time_statutory += 1
            if promised is not None:
                tally.with_promise += 1
                tally.on_time_promised += decision.time < promised.instant
    latest: dict[str, Alert] = {}
    for alert in alerts:
        latest[alert.alert_id] = alert
    for alert in latest.values():
        if alert.status != "active" or not start <= alert.detected_at < end:
            continue
        department, item = places.get(alert.case_id, (alert.department, alert.item_code))
        for tally in both(department or alert.department, item or alert.item_code):
            tally.alerts[f"{alert.rule}/{alert.signal}"] += 1
            if alert.signal == "red":
                tally.referred.add(alert.case_id)
    rows = []
    for (department, item), tally in sorted(tallies.items()):
        rows.append(ScorecardRow(
            department=department,
            item_code=item,
            period_from=start,
            period_to=end,
            accepted=tally.accepted,
            decided=tally.decided,
            on_time_statutory=tally.on_time_statutory,
            on_time_statutory_rate=_rate(tally.on_time_statutory, tally.decided),
            with_promise=tally.with_promise,
            on_time_promised=tally.on_time_promised,
            on_time_promised_rate=_rate(tally.on_time_promised, tally.with_promise),
            median_working_days=float(median(tally.working_days)) if tally.working_days else None,
            p90_working_days=_p90(tally.working_days),
            alerts=dict(sorted(tally.alerts.items())),
            referrals=len(tally.referred),
        ))
    return rows
