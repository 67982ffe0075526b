"""Deadline rules (they fire on their own when the clock passes): a violating case and its
compliant twin for each, plus the nuances of LEGAL-RULES.md.

The standard case: submitted Mon 2026-03-02, accepted Tue 2026-03-03, so the decision is due
Tue 2026-03-31 (20 WD), i.e. by 2026-04-01T00:00+08:00.
"""

from __future__ import annotations

from datetime import date

from permitwatch.alerts.clock import WorkingCalendar
from permitwatch.models.calendar import CalendarOverride
from tests.factory import CaseEvents, catalog, moment
from tests.harness import active, engine_for, rules, run

DUE = "2026-04-01T00:00:00+08:00"


def standard(case: CaseEvents):
    return [case.submitted("2026-03-02 09:00"), case.accepted("2026-03-03 09:00")]


class TestPW001DecisionOverdue:
    def test_fires_at_the_deadline_with_no_further_event(self):
        c = CaseEvents()
        alerts = run([*standard(c), c.step("2026-03-04", "review", "o-rev")], until="2026-04-01 00:00")
        [alert] = active(alerts, "PW-001")
        assert alert.detected_at == moment(DUE)
        assert alert.signal == "red" and alert.deadline.last_day == date(2026, 3, 31)
        assert alert.message.zh == "办件 SZ-2026-000123 超过法定办理时限 (2026-03-31) 未作出行政许可决定"
        assert alert.message.en.startswith("Case SZ-2026-000123: decision overdue since 2026-04-01 00:00")
        assert [b.cite for b in alert.legal_basis] == ["SZ-XK art. 8(13)", "XKF art. 42", "XKF art. 74(2)"]
        assert alert.officers.handler == "o-handler" and alert.officers.reviewer == "o-rev"
        assert alert.evidence == ["SZ-2026-000123-2"]  # the acceptance it is counted from

    def test_decision_on_the_last_day_is_in_time(self):
        c = CaseEvents()
        assert "PW-001" not in rules(run([*standard(c), c.decided("2026-03-31 23:59")], until="2026-05-01"))

    def test_decision_at_2400_is_late(self):
        c = CaseEvents()
        assert "PW-001" in rules(run([*standard(c), c.decided("2026-04-01 00:00")], until="2026-05-01"))

    def test_another_cases_event_moves_the_clock_and_fires_it(self):
        a, b = CaseEvents("SZ-A"), CaseEvents("SZ-B")
        alerts = run([*standard(a), b.submitted("2026-04-03 10:00")])
        assert [x.case_id for x in active(alerts, "PW-001")] == ["SZ-A"]

    def test_late_correction_notice_reanchors_to_the_receipt_day(self):
        c = CaseEvents()
        events = [c.submitted("2026-03-02 09:00"), c.correction("2026-03-12", ("M2",)),
                  c.supplied("2026-03-13", ("M2",)), c.accepted("2026-03-16")]
        alerts = run(events, until="2026-04-02")
        [overdue] = active(alerts, "PW-001")
        assert overdue.message.zh == "办件 SZ-2026-000123 超过法定办理时限 (2026-03-30) 未作出行政许可决定"
        assert overdue.evidence[0] == "SZ-2026-000123-1"  # deemed accepted on the receipt
        assert "PW-003" in rules(alerts)

    def test_regular_extension_moves_the_deadline(self):
        c = CaseEvents()
        events = [*standard(c), c.procedure("2026-03-20", "extension", 10), c.decided("2026-04-14")]
        assert rules(run(events, until="2026-05-01")) & {"PW-001", "PW-016"} == set()

    def test_irregular_extension_moves_nothing_and_is_flagged(self):
        c = CaseEvents()
        events = [*standard(c), c.procedure("2026-03-20", "extension", 10, approved_by=None), c.decided("2026-04-14")]
        found = rules(run(events, until="2026-05-01"))
        assert {"PW-001", "PW-016"} <= found

    def test_irregular_pause_moves_nothing_and_is_flagged(self):
        c = CaseEvents()
        events = [*standard(c), c.procedure("2026-03-10", "on_site_verification", 5),
                  c.procedure_ended("2026-03-17", "on_site_verification"), c.decided("2026-04-03")]
        assert {"PW-001", "PW-017"} <= rules(run(events, until="2026-05-01"))

    def test_statutory_pause_moves_the_deadline(self):
        c = CaseEvents()
        events = [*standard(c), c.procedure("2026-03-10", "expert_review", 5),
                  c.procedure_ended("2026-03-17", "expert_review"), c.decided("2026-04-03")]
        assert "PW-001" not in rules(run(events, until="2026-05-01"))

    def test_withdrawal_before_the_deadline_ends_the_obligation(self):
        c = CaseEvents()
        assert "PW-001" not in rules(run([*standard(c), c.withdrawn("2026-03-20")], until="2026-05-01"))

    def test_late_compliant_decision_retracts_with_the_same_id(self):
        a, b = CaseEvents("SZ-A"), CaseEvents("SZ-B")
        alerts = run([*standard(a), b.submitted("2026-04-10 10:00"), a.decided("2026-03-30 16:00")])
        records = [x for x in alerts if x.rule == "PW-001"]
        assert [r.status for r in records] == ["active", "retracted"]
        fired, retracted = records
        assert fired.alert_id == retracted.alert_id
        assert retracted.retraction.evidence == ["SZ-A-3"]
        assert retracted.detected_at == moment("2026-03-30 16:00")
        assert "SZ-A-3" in retracted.retraction.reason.en
        # Arriving ten days late and undoing a red card is itself a finding.
        assert [x.fact for x in active(alerts, "PW-018")] == ["retroactive:SZ-A-3"]

    def test_a_late_event_recorded_promptly_was_delayed_not_back_dated(self):
        """PW-018 rests on `recordedtime` when the event gives it (EVENTS.md): history loaded late,
        or a slow feed, is not back-dating."""
        a, b = CaseEvents("SZ-A"), CaseEvents("SZ-B")
        decided = a.decided("2026-03-30 16:00", recorded="2026-03-30 16:05")
        alerts = run([*standard(a), b.submitted("2026-04-10 10:00"), decided])
        assert [x.status for x in alerts if x.rule == "PW-001"] == ["active", "retracted"]
        assert "PW-018" not in rules(alerts)

    def test_late_decision_after_the_deadline_does_not_retract(self):
        a, b = CaseEvents("SZ-A"), CaseEvents("SZ-B")
        alerts = run([*standard(a), b.submitted("2026-04-10 10:00"), a.decided("2026-04-02 16:00")])
        assert len(active(alerts, "PW-001")) == 1 and not [x for x in alerts if x.status == "retracted"]

    def test_provisional_deadline_is_recomputed_when_the_calendar_arrives(self):
        c = CaseEvents()
        engine = engine_for()
        alerts = run([c.submitted("2026-12-09"), c.accepted("2026-12-10")], until="2027-01-08 12:00", engine=engine)
        [provisional] = active(alerts, "PW-001")
        assert provisional.provisional and provisional.deadline.last_day == date(2027, 1, 7)
        cn2027 = CalendarOverride(version="cn-2027-test", holidays=[date(2027, 1, 1)])
        changed = {a.alert_id: a for a in engine.set_calendar(WorkingCalendar([cn2027])).alerts}
        assert changed[provisional.alert_id].status == "retracted"
        assert "cn-2027-test" in changed[provisional.alert_id].retraction.reason.en
        [exact] = active(engine.advance(moment("2027-01-09 00:00")).alerts, "PW-001")
        assert not exact.provisional and exact.deadline.last_day == date(2027, 1, 8)
        assert exact.calendar_version.endswith("+cn-2027-test")


class TestPW002WarningAndYellow:
    items = catalog({"item_code": "ITEM-PROM", "name": "x", "department": "D", "promised_limit": {"value": 10}})

    def case(self):
        return CaseEvents(item="ITEM-PROM")

    def test_warning_yellow_warning_red_escalation(self):
        c = self.case()
        alerts = run(standard(c), until="2026-04-02", catalog=self.items)
        ladder = [(a.rule, a.signal, a.detected_at.date().isoformat()) for a in alerts]
        assert ladder == [
            ("PW-002", "warning", "2026-03-13"),  # 3 WD before the promise (03-17)
            ("PW-002", "yellow", "2026-03-18"),
            ("PW-002", "warning", "2026-03-27"),  # 3 WD before the statutory limit (03-31)
            ("PW-001", "red", "2026-04-01"),
        ]
        assert alerts[1].message.en.endswith("promised limit exceeded: no decision by 2026-03-17")

    def test_decided_within_the_promise_gets_nothing(self):
        c = self.case()
        events = [*standard(c), c.decided("2026-03-11"), c.licence("2026-03-12"), c.published("2026-03-12")]
        assert rules(run(events, until="2026-05-01", catalog=self.items)) == set()

    def test_promised_date_on_the_acceptance_event(self):
        c = CaseEvents()
        events = [c.submitted("2026-03-02"), c.accepted("2026-03-03", promised_deadline="2026-03-10")]
        yellow = [a for a in active(run(events, until="2026-03-12")) if a.signal == "yellow"]
        assert [a.deadline.last_day for a in yellow] == [date(2026, 3, 10)]

    def test_an_unknown_item_is_judged_with_no_promise(self):
        """EVENTS.md: an item the catalog does not know gets the law's defaults and no promised
        limit, even one the acceptance event states."""
        c = CaseEvents(item="ITEM-NOT-IN-CATALOG")
        events = [c.submitted("2026-03-02"), c.accepted("2026-03-03", promised_deadline="2026-03-10")]
        alerts = active(run(events, until="2026-04-02"))
        assert {(a.rule, a.signal) for a in alerts} == {("PW-002", "warning"), ("PW-001", "red")}
        assert {a.deadline.last_day for a in alerts} == {date(2026, 3, 31)}

    def test_item_level_warning_threshold(self):
        items = catalog({"item_code": "ITEM-W", "name": "x", "department": "D", "warning_working_days": 5})
        c = CaseEvents(item="ITEM-W")
        [warning] = active(run(standard(c), until="2026-03-30", catalog=items), "PW-002")
        assert warning.detected_at == moment("2026-03-25 00:00")  # 5 WD before 03-31


class TestPW003CorrectionNoticeLate:
    def test_no_answer_within_five_working_days_fires_on_its_own(self):
        c = CaseEvents()
        [alert] = active(run([c.submitted("2026-03-02 09:00")], until="2026-03-10 00:00"), "PW-003")
        assert alert.detected_at == moment("2026-03-10 00:00")
        assert "deemed accepted on 2026-03-02" in alert.message.en

    def test_notice_within_five_working_days_is_in_time(self):
        c = CaseEvents()
        events = [c.submitted("2026-03-02"), c.correction("2026-03-09 17:00", ("M2",))]
        assert "PW-003" not in rules(run(events, until="2026-03-20"))

    def test_late_notice_finds_the_alert_already_raised_when_its_time_passed_the_deadline(self):
        c = CaseEvents()
        alerts = run([c.submitted("2026-03-02"), c.correction("2026-03-12", ("M2",))])
        assert [(a.rule, a.detected_at) for a in alerts] == [("PW-003", moment("2026-03-10 00:00"))]

    def test_supplied_materials_must_be_answered_too(self):
        c = CaseEvents()
        events = [c.submitted("2026-03-02"), c.correction("2026-03-03", ("M2",)), c.supplied("2026-03-04", ("M2",))]
        [alert] = active(run(events, until="2026-03-12"), "PW-003")
        assert alert.fact == "answer_due:SZ-2026-000123-3"

    def test_on_time_notice_arriving_late_retracts(self):
        a, b = CaseEvents("SZ-A"), CaseEvents("SZ-B")
        alerts = run([a.submitted("2026-03-02"), b.submitted("2026-03-11"), a.correction("2026-03-05", ("M2",))])
        assert [x.status for x in alerts if x.rule == "PW-003" and x.case_id == "SZ-A"] == ["active", "retracted"]


class TestPW009OnTheSpot:
    items = catalog({"item_code": "ITEM-SPOT", "name": "x", "department": "D", "on_the_spot": True})

    def test_not_decided_the_same_day(self):
        c = CaseEvents(item="ITEM-SPOT")
        [alert] = active(run(standard(c), until="2026-03-04 08:00", catalog=self.items), "PW-009")
        assert alert.detected_at == moment("2026-03-04 00:00")

    def test_decided_the_same_day(self):
        c = CaseEvents(item="ITEM-SPOT")
        events = [*standard(c), c.decided("2026-03-03 15:00")]
        assert "PW-009" not in rules(run(events, until="2026-03-05", catalog=self.items))


class TestPW010Licence:
    def test_licence_not_issued_within_ten_working_days(self):
        c = CaseEvents()
        [alert] = active(run([*standard(c), c.decided("2026-03-10")], until="2026-03-26"), "PW-010")
        assert alert.deadline.last_day == date(2026, 3, 24) and alert.detected_at == moment("2026-03-25 00:00")

    def test_licence_in_time(self):
        c = CaseEvents()
        assert "PW-010" not in rules(run([*standard(c), c.decided("2026-03-10"), c.licence("2026-03-20")],
                                         until="2026-04-30"))

    def test_denial_needs_no_licence(self):
        c = CaseEvents()
        assert "PW-010" not in rules(run([*standard(c), c.decided("2026-03-10", "deny")], until="2026-04-30"))


class TestPW011Publication:
    def test_grant_not_published_within_twenty_working_days(self):
        c = CaseEvents()
        [alert] = active(run([*standard(c), c.decided("2026-03-10"), c.licence("2026-03-11")], until="2026-04-10"),
                         "PW-011")
        assert alert.deadline.last_day == date(2026, 4, 8)

    def test_published_in_time(self):
        c = CaseEvents()
        events = [*standard(c), c.decided("2026-03-10"), c.licence("2026-03-11"), c.published("2026-03-12")]
        assert "PW-011" not in rules(run(events, until="2026-05-10"))

    def test_item_period_overrides_the_default(self):
        items = catalog({"item_code": "ITEM-P", "name": "x", "department": "D", "publish_within": {"value": 3}})
        c = CaseEvents(item="ITEM-P")
        [alert] = active(run([*standard(c), c.decided("2026-03-10")], until="2026-03-20", catalog=items), "PW-011")
        assert alert.deadline.last_day == date(2026, 3, 13)


class TestPW012Hearing:
    items = catalog({"item_code": "ITEM-H", "name": "x", "department": "D", "hearing_required": True})

    def test_required_hearing_not_held_before_the_decision(self):
        c = CaseEvents(item="ITEM-H")
        alerts = run([*standard(c), c.decided("2026-03-20")], catalog=self.items)
        assert [a.fact for a in active(alerts, "PW-012")] == ["no_hearing:SZ-2026-000123-3"]

    def test_a_hearing_requested_at_the_decisions_instant_was_asked_before_it(self):
        """EVENTS.md ties: procedures before the decision."""
        c = CaseEvents()
        at = "2026-03-20 10:00"
        alerts = run([*standard(c), c.decided(at), c.hearing("requested", at)], until="2026-03-21")
        assert [a.fact for a in active(alerts, "PW-012")] == ["no_hearing:SZ-2026-000123-3"]

    def test_hearing_held_then_decision(self):
        c = CaseEvents(item="ITEM-H")
        events = [*standard(c), c.hearing("held", "2026-03-18"), c.decided("2026-03-20")]
        assert "PW-012" not in rules(run(events, catalog=self.items))

    def test_hearing_notified_less_than_seven_days_ahead(self):
        c = CaseEvents()
        alerts = run([*standard(c), c.hearing("notified", "2026-03-10", scheduled_for="2026-03-14T09:00:00+08:00")])
        [alert] = active(alerts, "PW-012")
        assert "only 4 day(s) ahead" in alert.message.en

    def test_hearing_notified_seven_days_ahead(self):
        c = CaseEvents()
        events = [*standard(c), c.hearing("notified", "2026-03-10", scheduled_for="2026-03-17T09:00:00+08:00")]
        assert "PW-012" not in rules(run(events))

    def test_requested_hearing_not_held_within_twenty_working_days(self):
        c = CaseEvents()
        [alert] = active(run([*standard(c), c.hearing("requested", "2026-03-05")], until="2026-04-03 01:00"), "PW-012")
        assert alert.deadline.last_day == date(2026, 4, 2)

    def test_requested_hearing_held_in_time(self):
        c = CaseEvents()
        events = [*standard(c), c.hearing("requested", "2026-03-05"), c.hearing("held", "2026-03-20")]
        assert "PW-012" not in rules(run(events, until="2026-04-30"))


class TestPW014PreliminaryReview:
    items = catalog({"item_code": "ITEM-PRE", "name": "x", "department": "D", "preliminary_review": True})

    def test_not_forwarded_within_twenty_working_days(self):
        c = CaseEvents(item="ITEM-PRE")
        [alert] = active(run(standard(c), until="2026-04-01 08:00", catalog=self.items), "PW-014")
        assert alert.deadline.last_day == date(2026, 3, 31)

    def test_forwarded_in_time(self):
        c = CaseEvents(item="ITEM-PRE")
        events = [*standard(c), c.forwarded("2026-03-20")]
        assert "PW-014" not in rules(run(events, until="2026-04-10", catalog=self.items))

    def test_a_late_forwarding_shows_a_preliminary_review_whatever_the_catalog_says(self):
        """EVENTS.md: flagged when the forwarding arrives (no timer: nothing said to expect one)."""
        for item in ("ITEM-STD", "ITEM-UNKNOWN"):
            c = CaseEvents(item=item)
            late = c.forwarded("2026-04-15 10:00")
            [alert] = active(run([*standard(c), late, c.decided("2026-04-20")], until="2026-06-01"), "PW-014")
            assert alert.detected_at == late.time and alert.deadline.last_day == date(2026, 3, 31)
            assert alert.evidence[-1] == late.id
            on_time = CaseEvents(f"SZ-{item}", item=item)
            events = [*standard(on_time), on_time.forwarded("2026-03-20"), on_time.decided("2026-04-20")]
            assert "PW-014" not in rules(run(events, until="2026-06-01"))


def test_every_alert_carries_the_contract_fields():
    c = CaseEvents()
    [alert] = active(run(standard(c), until="2026-04-01 00:00"), "PW-001")
    record = alert.model_dump(mode="json")
    for key in ("alert_id", "rule", "signal", "status", "case_id", "item_code", "department", "officers",
                "legal_basis", "deadline", "calendar_version", "provisional", "evidence", "detected_at", "message"):
        assert record[key] is not None, key
    assert record["legal_basis"][0]["text_zh"].startswith("对符合法定条件的申请人")
