"""The legal clock: working-day arithmetic on the PRC calendar. It knows no rules.

Counting (LEGAL-RULES.md §1): the day of the triggering event is not counted; a period of N days
ends at 24:00 Asia/Shanghai of the N-th day after it (configurable cut-off). Working days exclude
weekends and statutory holidays (XKF art. 82) and include make-up workdays (调休上班日). A period in
calendar days whose last day is a day off ends on the next working day (Civil Code art. 203).

Built-in data: chinese-calendar (2004–2026). Later years come from operator calendar files; a
period that reaches a year with neither is computed on weekends alone and marked provisional.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import NamedTuple

import chinese_calendar
from chinese_calendar import constants as builtin_calendar

from permitwatch.models.alerts import DeadlineInfo
from permitwatch.models.calendar import CalendarOverride
from permitwatch.models.common import LEGAL_TZ, Duration

SHANGHAI = LEGAL_TZ

# Days outside this span cannot be counted at all; event times are validated to 1990–2099 and no
# legal period runs past ten years.
_SPAN_START = date(1990, 1, 1)
_SPAN_END = date(2110, 12, 31)

BUILTIN_YEARS = range(min(builtin_calendar.holidays).year, max(builtin_calendar.holidays).year + 1)
BUILTIN_VERSION = f"cn-builtin-{BUILTIN_YEARS.start}-{BUILTIN_YEARS.stop - 1}@chinese-calendar-{chinese_calendar.__version__}"


def local_date(moment: datetime) -> date:
    """The legal day (Asia/Shanghai) on which an aware instant falls."""
    return (moment if moment.tzinfo is SHANGHAI else moment.astimezone(SHANGHAI)).date()


JUST_AFTER = timedelta(microseconds=1)
"""The least time after an instant (instants are kept in microseconds): what must pass before
everything at that instant is known."""


class PeriodEnd(NamedTuple):
    last_day: date
    provisional: bool
    nominal_day: date
    """The last day before a calendar-day period that ends on a rest day moves to the next working
    day (Civil Code art. 203): what a later pause or extension is counted from."""


_BUILT_KEPT = 4
_BUILT: dict[tuple, WorkingCalendar] = {}
"""`WorkingCalendar.of`'s calendars, by their overrides' content, oldest first."""
_BUILDING = threading.Lock()


class WorkingCalendar:
    """The PRC working-day calendar: built-in data plus operator overrides (later files win)."""

    def __init__(self, overrides: Sequence[CalendarOverride] = ()):
        holidays = set(builtin_calendar.holidays)
        workdays = set(builtin_calendar.workdays)
        published = set(BUILTIN_YEARS)
        for override in overrides:
            holidays.update(override.holidays)
            workdays.difference_update(override.holidays)
            workdays.update(override.workdays)
            holidays.difference_update(override.workdays)
            published |= override.years
        self.overrides = tuple(overrides)
        self.published_years = frozenset(published)
        self.version = "+".join([BUILTIN_VERSION, *(o.version for o in overrides)])
        self._holidays = frozenset(holidays)
        self._workdays = frozenset(workdays)
        day, ordinals = _SPAN_START, []
        while day <= _SPAN_END:
            if self.is_working_day(day):
                ordinals.append(day.toordinal())
            day += timedelta(days=1)
        self._working = ordinals
        # Cached per instance: a calendar is immutable, and deadlines repeat across cases.
        self._period_end_cached = lru_cache(maxsize=65536)(self._period_end)
        self.count = lru_cache(maxsize=65536)(self._count)

    @classmethod
    def of(cls, overrides: Sequence[CalendarOverride] = ()) -> WorkingCalendar:
        """The calendar of `overrides`, built once per distinct content and shared (the few most
        recent): building one lays out 120 years of days, about 0.1 s, which every API request that
        shows deadlines paid, and an embedded runtime built twice more for its engine; a calendar
        never changes once built."""
        key = tuple((o.version, tuple(o.holidays), tuple(o.workdays)) for o in overrides)
        with _BUILDING:  # the API's threads; and one build for requests that come together
            calendar = _BUILT.get(key)
            if calendar is None:
                while len(_BUILT) >= _BUILT_KEPT:
                    del _BUILT[next(iter(_BUILT))]
                calendar = _BUILT[key] = cls(overrides)
            return calendar

    def with_override(self, override: CalendarOverride) -> WorkingCalendar:
        """A new calendar with one more override file; a file with the same version replaces it."""
        kept = [o for o in self.overrides if o.version != override.version]
        return WorkingCalendar([*kept, override])

    def is_working_day(self, day: date) -> bool:
        if day in self._holidays:
            return False
        return day in self._workdays or day.weekday() < 5

    def day_kind(self, day: date) -> str:
        """'working', 'make-up workday', 'holiday' or 'weekend', for people checking by hand."""
        if day in self._holidays:
            return "holiday"
        if day.weekday() >= 5:
            return "make-up workday" if day in self._workdays else "weekend"
        return "working"

    def is_published(self, year: int) -> bool:
        return year in self.published_years

    def _provisional(self, first: date, last: date) -> bool:
        return any(not self.is_published(y) for y in range(first.year, last.year + 1))

    def _check_span(self, day: date) -> None:
        if not _SPAN_START <= day <= _SPAN_END:
            raise ValueError(f"{day} is outside the calendar span {_SPAN_START}–{_SPAN_END}")

    def period_end(self, trigger: date, period: Duration) -> PeriodEnd:
        """The last day of `period` counted from the day after `trigger`."""
        return self._period_end_cached(trigger, period.value, period.unit)

    def _period_end(self, trigger: date, value: int, unit: str) -> PeriodEnd:
        self._check_span(trigger)
        if value == 0:
            return PeriodEnd(trigger, self._provisional(trigger, trigger), trigger)
        if unit == "working_days":
            index = bisect_right(self._working, trigger.toordinal()) + value - 1
            last = nominal = date.fromordinal(self._working[index])
        else:
            last = nominal = trigger + timedelta(days=value)
            if not self.is_working_day(last):
                last = self.next_working_day(last)
        return PeriodEnd(last, self._provisional(trigger + timedelta(days=1), last), nominal)

    def next_working_day(self, day: date) -> date:
        """The first working day after `day`."""
        return date.fromordinal(self._working[bisect_right(self._working, day.toordinal())])

    def working_days_before(self, day: date, n: int) -> date:
        """The working day `n` working days before `day` (`day` itself need not be working)."""
        index = bisect_left(self._working, day.toordinal()) - n
        return date.fromordinal(self._working[max(index, 0)])

    def _count(self, after: date, through: date, unit: str = "working_days") -> int:
        """How many days of `unit` lie in (after, through]; 0 when through <= after."""
        if through <= after:
            return 0
        if unit == "calendar_days":
            return (through - after).days
        return bisect_right(self._working, through.toordinal()) - bisect_right(self._working, after.toordinal())


class Step(NamedTuple):
    """One step of a deadline computation: `label` (sources) from `start`, + `period`, → `end`."""

    label: str
    sources: tuple[str, ...]
    start: date
    period: Duration | None
    end: date

    def render(self) -> str:
        who = f" ({', '.join(self.sources)})" if self.sources else ""
        if self.period is None:
            return f"{self.label}{who}: {self.end}"
        return f"{self.label}{who}: {self.start} + {describe(self.period)} → {self.end}"


class Deadline(NamedTuple):
    """When something is due, and why. The steps are kept structured and only rendered into
    words when an alert is written, which keeps the event path cheap."""

    name: str
    last_day: date
    instant: datetime
    calendar_version: str
    provisional: bool
    steps: tuple[Step, ...]
    nominal_day: date | None = None
    """The last day before a rest day moved it (`PeriodEnd.nominal_day`), when it differs."""

    @property
    def sources(self) -> tuple[str, ...]:
        """Ids of the events the computation rests on (trigger, extensions, pauses)."""
        return tuple(source for step in self.steps for source in step.sources)

    @property
    def basis(self) -> list[str]:
        return [step.render() for step in self.steps]

    def info(self) -> DeadlineInfo:
        return DeadlineInfo(
            name=self.name,
            last_day=self.last_day,
            instant=self.instant,
            calendar_version=self.calendar_version,
            provisional=self.provisional,
            basis=self.basis,
        )


def _moved(end: PeriodEnd) -> date | None:
    return end.nominal_day if end.nominal_day != end.last_day else None


def describe(period: Duration) -> str:
    return f"{period.value} {'WD' if period.unit == 'working_days' else 'calendar days'}"


class LegalClock:
    """A calendar plus the end-of-day cut-off: turns trigger days and periods into deadlines."""

    def __init__(self, calendar: WorkingCalendar, end_of_day: time | None = None):
        self.calendar = calendar
        self.end_of_day = end_of_day
        self._instant = lru_cache(maxsize=65536)(self._end_instant)

    @property
    def version(self) -> str:
        return self.calendar.version

    def _end_instant(self, last_day: date) -> datetime:
        if self.end_of_day is None:
            return datetime.combine(last_day + timedelta(days=1), time(0), SHANGHAI)
        return datetime.combine(last_day, self.end_of_day, SHANGHAI)

    def end_of(self, last_day: date) -> datetime:
        """The instant a legal day ends (24:00 by default, i.e. 00:00 of the next day)."""
        return self._instant(last_day)

    def deadline(
        self, name: str, trigger: date, period: Duration, label: str, sources: tuple[str, ...] = ()
    ) -> Deadline:
        """A deadline `period` after the trigger day; `label` says what the trigger is, in law."""
        end = self.calendar.period_end(trigger, period)
        return Deadline(
            name, end.last_day, self.end_of(end.last_day), self.calendar.version, end.provisional,
            (Step(label, sources, trigger, period, end.last_day),), _moved(end),
        )

    def on_day(self, name: str, day: date, label: str, sources: tuple[str, ...] = ()) -> Deadline:
        """A deadline that is a given day (a promised date, an on-the-spot same-day decision)."""
        return Deadline(
            name, day, self.end_of(day), self.calendar.version, not self.calendar.is_published(day.year),
            (Step(label, sources, day, None, day),),
        )

    def extend(self, deadline: Deadline, period: Duration, label: str, source: str) -> Deadline:
        """Move a deadline later by `period` counted from its current last day (the day before a
        rest day moved it: a calendar-day period ends on the next working day only once)."""
        start = deadline.nominal_day or deadline.last_day
        end = self.calendar.period_end(start, period)
        return Deadline(
            deadline.name, end.last_day, self.end_of(end.last_day), self.calendar.version,
            deadline.provisional or end.provisional,
            (*deadline.steps, Step(label, (source,), start, period, end.last_day)), _moved(end),
        )
