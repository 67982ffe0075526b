"""The legal clock on the real 2026 PRC calendar, override files, and its arithmetic laws."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from permitwatch.alerts.clock import SHANGHAI, LegalClock, WorkingCalendar
from permitwatch.models.calendar import CalendarOverride
from permitwatch.models.common import Duration, working_days
from permitwatch.models.files import ReferenceFileError, parse_structured

CALENDAR = WorkingCalendar()
CLOCK = LegalClock(CALENDAR)

# A test calendar for 2027 (the real one is published by the State Council; operators load it).
CN_2027 = CalendarOverride(
    version="cn-2027-test",
    holidays=[date(2027, 1, 1), date(2027, 1, 2), date(2027, 1, 3)],
    workdays=[],
)


def last_day(trigger: date, n: int, unit: str = "working_days", clock: LegalClock = CLOCK) -> date:
    return clock.deadline("t", trigger, Duration(value=n, unit=unit), "test").last_day


class TestRealCalendar2026:
    def test_trigger_day_is_not_counted(self):
        assert last_day(date(2026, 3, 2), 1) == date(2026, 3, 3)

    def test_spring_festival_is_skipped_and_makeup_saturday_counts(self):
        # 2026-02-14 (Sat) is a make-up workday; 2026-02-15..23 is the Spring Festival holiday.
        assert CALENDAR.is_working_day(date(2026, 2, 14))
        assert not CALENDAR.is_working_day(date(2026, 2, 16))
        assert last_day(date(2026, 2, 13), 1) == date(2026, 2, 14)
        assert last_day(date(2026, 2, 10), 5) == date(2026, 2, 24)

    def test_mid_autumn_and_national_day_with_makeup_saturday_oct_10(self):
        assert CALENDAR.day_kind(date(2026, 10, 10)) == "make-up workday"
        assert CALENDAR.day_kind(date(2026, 10, 1)) == "holiday"
        assert CALENDAR.day_kind(date(2026, 9, 25)) == "holiday"
        assert last_day(date(2026, 9, 30), 3) == date(2026, 10, 10)
        assert last_day(date(2026, 9, 21), 20) == date(2026, 10, 26)

    def test_trigger_on_a_holiday_counts_from_the_next_working_day(self):
        assert last_day(date(2026, 10, 3), 1) == date(2026, 10, 8)

    def test_period_ends_at_2400_shanghai_by_default(self):
        deadline = CLOCK.deadline("t", date(2026, 9, 21), working_days(20), "test")
        assert deadline.instant == datetime(2026, 10, 27, 0, 0, tzinfo=SHANGHAI)
        assert deadline.instant.utcoffset() == timedelta(hours=8)
        assert not deadline.provisional

    def test_end_of_day_cut_off_is_configurable(self):
        clock = LegalClock(CALENDAR, time(17, 30))
        deadline = clock.deadline("t", date(2026, 9, 21), working_days(20), "test")
        assert deadline.instant == datetime(2026, 10, 26, 17, 30, tzinfo=SHANGHAI)

    def test_calendar_days_ending_on_a_holiday_roll_to_the_next_working_day(self):
        # Civil Code art. 203: a last day that is a day off moves to the day after the break.
        assert last_day(date(2026, 9, 28), 3, "calendar_days") == date(2026, 10, 8)
        assert last_day(date(2026, 3, 2), 3, "calendar_days") == date(2026, 3, 5)

    def test_zero_period_ends_on_the_trigger_day(self):
        assert last_day(date(2026, 3, 7), 0) == date(2026, 3, 7)


class TestYearsWithoutPublishedCalendar:
    def test_year_crossing_deadline_is_provisional_without_2027_data(self):
        deadline = CLOCK.deadline("t", date(2026, 12, 10), working_days(20), "test")
        assert deadline.last_day == date(2027, 1, 7)  # weekends only: 2027-01-01 counted
        assert deadline.provisional

    def test_the_2027_file_makes_it_exact_and_recomputes(self):
        clock = LegalClock(CALENDAR.with_override(CN_2027))
        deadline = clock.deadline("t", date(2026, 12, 10), working_days(20), "test")
        assert deadline.last_day == date(2027, 1, 8)
        assert not deadline.provisional
        assert deadline.calendar_version.endswith("+cn-2027-test")

    def test_a_deadline_inside_a_published_year_is_exact(self):
        assert not CLOCK.deadline("t", date(2026, 11, 2), working_days(20), "test").provisional

    def test_override_replaces_same_version_and_overrides_builtin_days(self):
        moved = CalendarOverride(version="cn-2026-fix", holidays=[date(2026, 10, 10)])
        calendar = CALENDAR.with_override(moved)
        assert not calendar.is_working_day(date(2026, 10, 10))
        assert calendar.with_override(CalendarOverride(version="cn-2026-fix")).is_working_day(date(2026, 10, 10))

    def test_make_up_workday_in_override_counts(self):
        calendar = WorkingCalendar([CalendarOverride(version="v", holidays=[date(2027, 2, 8)], workdays=[date(2027, 2, 6)])])
        assert calendar.day_kind(date(2027, 2, 6)) == "make-up workday"
        assert calendar.is_published(2027)

    def test_a_date_both_holiday_and_workday_is_rejected(self):
        with pytest.raises(ReferenceFileError, match="both as holiday and workday: 2027-01-01"):
            parse_structured(b'{"version": "x", "holidays": ["2027-01-01"], "workdays": ["2027-01-01"]}',
                             CalendarOverride, "cal.json")

    def test_yaml_calendar_file(self):
        override = parse_structured(b"version: cn-2027\nholidays: [2027-01-01]\nworkdays: []\n", CalendarOverride, "c.yaml")
        assert override.years == {2027}

    def test_outside_the_span_is_an_error(self):
        with pytest.raises(ValueError, match="outside the calendar span"):
            last_day(date(1980, 1, 1), 1)


# ---------------------------------------------------------------- arithmetic laws

days = st.dates(min_value=date(2004, 1, 1), max_value=date(2030, 12, 31))
lengths = st.integers(min_value=0, max_value=60)
units = st.sampled_from(["working_days", "calendar_days"])


@settings(max_examples=300, deadline=None)
@given(days, lengths, lengths)
def test_adding_a_then_b_working_days_equals_adding_a_plus_b(trigger, a, b):
    first = last_day(trigger, a)
    assert last_day(first, b) == last_day(trigger, a + b)


@settings(max_examples=300, deadline=None)
@given(days, st.integers(min_value=1, max_value=60), units)
def test_a_deadline_never_lands_on_a_non_working_day(trigger, n, unit):
    assert CALENDAR.is_working_day(last_day(trigger, n, unit))


@settings(max_examples=300, deadline=None)
@given(days, lengths)
def test_counting_back_the_days_gives_the_period(trigger, n):
    assert CALENDAR.count(trigger, last_day(trigger, n)) == n


@settings(max_examples=200, deadline=None)
@given(days, st.integers(min_value=1, max_value=40), st.integers(min_value=1, max_value=40))
def test_a_longer_period_never_ends_earlier(trigger, n, extra):
    assert last_day(trigger, n + extra) > last_day(trigger, n)


def test_a_calendar_is_built_once_per_content_of_its_overrides():
    """The API shows deadlines on many requests; each built the calendar again (0.1 s) before."""
    override = CalendarOverride(version="SC-2031", holidays=[date(2031, 1, 1)], workdays=[date(2031, 1, 4)])
    same = CalendarOverride.model_validate(override.model_dump())
    assert WorkingCalendar.of([override]) is WorkingCalendar.of([same])
    assert WorkingCalendar.of() is WorkingCalendar.of([]) is not WorkingCalendar.of([override])
    # A file edited under the same version is another calendar.
    edited = CalendarOverride(version="SC-2031", holidays=[date(2031, 1, 2)], workdays=[date(2031, 1, 4)])
    assert not WorkingCalendar.of([edited]).is_working_day(date(2031, 1, 2))
    assert WorkingCalendar.of([override]).is_working_day(date(2031, 1, 2))
