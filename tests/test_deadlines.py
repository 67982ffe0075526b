"""The deadlines of a case: acceptance or deemed acceptance, extensions, XKF art. 45 pauses."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from permitwatch.alerts.case import CaseState
from permitwatch.alerts.clock import LegalClock, WorkingCalendar
from permitwatch.alerts.deadlines import CaseClock
from permitwatch.models.catalog import CatalogEntry
from permitwatch.models.settings import RuleSettings
from tests.factory import CaseEvents, moment

CLOCK = LegalClock(WorkingCalendar())
STANDARD = CatalogEntry(item_code="ITEM-STD", name="食品经营许可", department="D-MARKET")
JOINT = CatalogEntry(item_code="ITEM-JOINT", name="建设工程规划许可", department="D-PLAN", joint_handling=True)
CAL_DAYS = CatalogEntry.model_validate({"item_code": "ITEM-CAL", "name": "x", "department": "D",
                                        "statutory_limit": {"value": 30, "unit": "calendar_days"}})


def state(*events) -> CaseState:
    case = CaseState(events[0].subject)
    for event in events:
        case.apply(event)
    return case


def anchor(case: CaseState, item: CatalogEntry = STANDARD, now: str = "2027-06-01"):
    clock = CaseClock(CLOCK, RuleSettings(), item)
    return clock.anchor(case, clock.response_windows(case), moment(now))


def due(case: CaseState, item: CatalogEntry = STANDARD, now: str = "2027-06-01") -> date | None:
    start = anchor(case, item, now)
    deadline = start and CaseClock(CLOCK, RuleSettings(), item).decision_deadline(case, start)
    return deadline.last_day if deadline else None


c = CaseEvents()


class TestAcceptance:
    def test_decision_clock_runs_from_acceptance(self):
        assert due(state(c.submitted("2026-03-02"), c.accepted("2026-03-03"))) == date(2026, 3, 31)

    def test_late_correction_notice_deems_acceptance_on_receipt_day(self):
        # Receipt 2026-03-02; 5 WD end 2026-03-09; the notice on 2026-03-12 is late, so the
        # application counts as accepted on 2026-03-02 and the decision is due 2026-03-30.
        case = state(c.submitted("2026-03-02"), c.correction("2026-03-12", ("M2",)),
                     c.supplied("2026-03-13", ("M2",)), c.accepted("2026-03-16"))
        start = anchor(case, now="2026-04-01")
        assert start.deemed and start.day == date(2026, 3, 2)
        assert due(case) == date(2026, 3, 30)

    def test_no_notice_and_no_acceptance_in_five_days_is_deemed_acceptance(self):
        case = state(c.submitted("2026-03-02"))
        assert due(case, now="2026-03-09 23:00") is None  # still within the 5 WD
        assert due(case, now="2026-03-10 08:00") == date(2026, 3, 30)

    def test_timely_notice_runs_the_clock_from_the_complete_materials(self):
        case = state(c.submitted("2026-03-02"), c.correction("2026-03-04", ("M2",)),
                     c.supplied("2026-03-10", ("M2",)), c.accepted("2026-03-11"))
        assert due(case) == date(2026, 4, 8)  # 2026-03-10 + 20 WD (Qingming 04-04..06 off)

    def test_supplied_materials_left_unanswered_are_deemed_accepted_on_their_day(self):
        case = state(c.submitted("2026-03-02"), c.correction("2026-03-04", ("M2",)),
                     c.supplied("2026-03-10", ("M2",)), c.accepted("2026-03-20"))
        assert due(case) == date(2026, 4, 8)

    def test_not_accepted_yet_has_no_decision_deadline(self):
        assert due(state(c.submitted("2026-03-02"), c.correction("2026-03-03", ("M1",)))) is None

    def test_joint_handling_gets_45_working_days(self):
        assert due(state(c.submitted("2026-03-02"), c.accepted("2026-03-02")), JOINT) == date(2026, 5, 8)

    def test_item_limit_in_calendar_days(self):
        assert due(state(c.submitted("2026-09-01"), c.accepted("2026-09-01")), CAL_DAYS) == date(2026, 10, 8)

    def test_a_calendar_day_limit_ending_on_a_rest_day_moves_once_not_again_for_a_pause(self):
        """Civil Code art. 203: 30 days from 05-07 end on Saturday 06-06, so on Monday 06-08. A 2-day
        pause counts from 06-06 (06-08), not from the Monday it was moved to (06-10)."""
        accepted = (c.submitted("2026-05-06"), c.accepted("2026-05-07"))
        assert due(state(*accepted), CAL_DAYS) == date(2026, 6, 8)
        paused = state(*accepted, c.procedure("2026-05-11", "expert_review", 2),
                       c.procedure_ended("2026-05-13", "expert_review"))
        assert due(paused, CAL_DAYS) == date(2026, 6, 8)


class TestExtensions:
    base = (c.submitted("2026-03-02"), c.accepted("2026-03-03"))  # due 2026-03-31

    def test_approved_notified_extension_adds_up_to_ten_days(self):
        assert due(state(*self.base, c.procedure("2026-03-20", "extension", 10))) == date(2026, 4, 15)

    def test_longer_extension_counts_only_what_the_law_allows(self):
        assert due(state(*self.base, c.procedure("2026-03-20", "extension", 20))) == date(2026, 4, 15)

    @pytest.mark.parametrize("irregular", [dict(approved_by=None), dict(approved_by=""), dict(notified=False)])
    def test_irregular_extension_moves_nothing(self, irregular):
        assert due(state(*self.base, c.procedure("2026-03-20", "extension", 10, **irregular))) == date(2026, 3, 31)

    def test_extensions_together_extend_at_most_what_the_law_allows(self):
        """LEGAL-RULES §1 (2026-11-30): a repeated extension is flagged (PW-016) and counts only what
        the earlier ones left of the ten working days."""
        case = state(*self.base, c.procedure("2026-03-20", "extension", 5), c.procedure("2026-04-01", "extension", 5))
        assert due(case) == date(2026, 4, 15)
        case = state(*self.base, c.procedure("2026-03-20", "extension", 10), c.procedure("2026-04-10", "extension", 5))
        assert due(case) == date(2026, 4, 15)

    def test_an_extension_that_states_no_length_extends_by_the_most_the_law_allows(self):
        assert due(state(*self.base, c.procedure("2026-03-20", "extension"))) == date(2026, 4, 15)
        case = state(c.submitted("2026-03-02"), c.accepted("2026-03-02"), c.procedure("2026-03-20", "extension"))
        assert due(case, JOINT) == date(2026, 5, 28)

    def test_extension_after_the_deadline_moves_nothing(self):
        assert due(state(*self.base, c.procedure("2026-04-01", "extension", 10))) == date(2026, 3, 31)

    def test_joint_handling_extension_up_to_fifteen(self):
        case = state(c.submitted("2026-03-02"), c.accepted("2026-03-02"), c.procedure("2026-03-20", "extension", 20))
        assert due(case, JOINT) == date(2026, 5, 28)  # 2026-05-08 + 15 WD (05-09 is a make-up Saturday)


class TestPauses:
    base = (c.submitted("2026-03-02"), c.accepted("2026-03-03"))  # due 2026-03-31

    def test_statutory_pause_stops_the_clock_for_its_working_days(self):
        case = state(*self.base, c.procedure("2026-03-10", "expert_review", 5), c.procedure_ended("2026-03-13", "expert_review"))
        assert due(case) == date(2026, 4, 3)  # 3 WD paused (11, 12, 13 March)

    def test_open_pause_stops_the_clock_until_it_ends_whatever_was_planned(self):
        """LEGAL-RULES §1 (2026-11-30): the planned length is what the applicant was told, not an end."""
        assert due(state(*self.base, c.procedure("2026-03-10", "testing", 5))) is None
        ended = state(*self.base, c.procedure("2026-03-10", "testing", 5), c.procedure_ended("2026-03-24", "testing"))
        assert due(ended) == date(2026, 4, 15)  # 10 WD paused (11–24 March), not the 5 planned; Qingming 4–6 April

    def test_open_pause_without_planned_length_suspends_the_deadline(self):
        assert due(state(*self.base, c.procedure("2026-03-10", "hearing"))) is None

    @pytest.mark.parametrize("kind", ["on_site_verification", "other"])
    def test_pause_of_another_kind_does_not_stop_the_clock(self, kind):
        case = state(*self.base, c.procedure("2026-03-10", kind, 5), c.procedure_ended("2026-03-13", kind))
        assert due(case) == date(2026, 3, 31)

    def test_pause_without_written_notice_does_not_stop_the_clock(self):
        case = state(*self.base, c.procedure("2026-03-10", "inspection", 5, notified=False),
                     c.procedure_ended("2026-03-13", "inspection"))
        assert due(case) == date(2026, 3, 31)

    def test_end_arriving_before_start_pairs_the_same(self):
        start, end = c.procedure("2026-03-10", "expert_review", 5), c.procedure_ended("2026-03-13", "expert_review")
        assert due(state(*self.base, end, start)) == due(state(*self.base, start, end)) == date(2026, 4, 3)

    def test_pause_and_extension_combine(self):
        case = state(*self.base, c.procedure("2026-03-10", "appraisal", 3), c.procedure_ended("2026-03-13", "appraisal"),
                     c.procedure("2026-03-25", "extension", 10))
        assert due(case) == date(2026, 4, 20)


@settings(max_examples=150, deadline=None)
@given(
    accepted=st.dates(min_value=date(2026, 1, 5), max_value=date(2026, 11, 1)),
    offset=st.integers(min_value=0, max_value=30),
    length=st.integers(min_value=0, max_value=15),
    kind=st.sampled_from(["hearing", "inspection", "expert_review", "on_site_verification", "extension"]),
)
def test_a_pause_or_extension_never_makes_the_deadline_earlier(accepted, offset, length, kind):
    f = CaseEvents("SZ-PROP")
    base = (f.submitted(accepted.isoformat()), f.accepted(accepted.isoformat()))
    start = date.fromordinal(accepted.toordinal() + offset)
    end = date.fromordinal(start.toordinal() + length)
    with_pause = state(*base, f.procedure(start.isoformat(), kind, length), f.procedure_ended(end.isoformat(), kind))
    assert due(with_pause) >= due(state(*base))
