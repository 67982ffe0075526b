"""Time sources for the runtimes. The core never reads a clock; the runtimes inject one."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Protocol

from permitwatch.models.common import LEGAL_TZ

HISTORY_AFTER = timedelta(days=7)
"""Events this much older than a running monitor's clock are history: judged live, every deadline
they passed would fire at once, to be retracted by the events that follow."""


def history_warning(times: list[datetime], now: datetime) -> str | None:
    """What to tell the sender of events (their `times`) far older than the clock `now`."""
    old = [moment for moment in times if moment < now - HISTORY_AFTER]
    if not old:
        return None
    return (f"{len(old)} event(s) are more than {HISTORY_AFTER.days} days older than the monitor's clock "
            f"({now.isoformat()}; the oldest {min(old).isoformat()}): a running monitor judges them at its clock, "
            "so every deadline they passed fires at once and is retracted by the events that follow. Load "
            "history with `permitwatch import` instead (it replays events on their own clock)")


def too_far_ahead(what: str, moment: datetime, now: datetime, limit: timedelta, whose: str) -> str | None:
    """Why `what` dated `moment` is refused, or None when it is within `limit` of the clock `now`:
    applied, it would move the clock past real deadlines and raise false alerts."""
    if moment <= now + limit:
        return None
    return f"{what} {moment.isoformat()} is more than {limit} ahead of {whose} clock {now.isoformat()}"


class Clock(Protocol):
    def now(self) -> datetime: ...

    def seconds_until(self, instant: datetime) -> float:
        """Real seconds to wait until the clock shows `instant` (≤ 0: it already does)."""
        ...

    def real_seconds(self, span: timedelta) -> float:
        """Real seconds in which the clock runs `span`: what the runtime's metrics measure, so that
        a simulated clock's minutes do not look like a slow scheduler."""
        ...


class WallClock:
    """The real time, in legal time (Asia/Shanghai)."""

    def now(self) -> datetime:
        return datetime.now(LEGAL_TZ)

    def seconds_until(self, instant: datetime) -> float:
        return (instant - self.now()).total_seconds()

    def real_seconds(self, span: timedelta) -> float:
        return span.total_seconds()


class DemoClock:
    """A compressed clock for the demo: starts at `start` and runs `speed` times faster than real
    time (1440: one day per minute)."""

    def __init__(self, start: datetime, speed: float):
        # In legal time, as the wall clock's: instants in one time zone compare several times
        # faster, and the workers compare every event's time with their clock.
        self.start = start.astimezone(LEGAL_TZ)
        self.speed = speed
        self._origin = time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self._origin) * self.speed)

    def seconds_until(self, instant: datetime) -> float:
        return (instant - self.now()).total_seconds() / self.speed

    def real_seconds(self, span: timedelta) -> float:
        return span.total_seconds() / self.speed


class ManualClock:
    """A clock that moves only when told to: for tests and for imports of history."""

    def __init__(self, start: datetime):
        self.current = start

    def now(self) -> datetime:
        return self.current

    def set(self, instant: datetime) -> None:
        self.current = instant

    def seconds_until(self, instant: datetime) -> float:
        return 0.0 if instant <= self.current else float("inf")

    def real_seconds(self, span: timedelta) -> float:
        """A manual clock has no rate; a test that moves it by a minute means a minute."""
        return span.total_seconds()
