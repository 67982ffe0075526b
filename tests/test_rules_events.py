"""Rules judged on events (no timer): a violating case and its compliant twin for each."""

from __future__ import annotations

import pytest

from permitwatch.models.settings import RuleSettings
from tests.factory import CaseEvents, catalog
from tests.harness import active, rules, run


def base(c: CaseEvents, materials=("M1", "M2", "M3")):
    return [c.submitted("2026-03-02 09:00", materials=materials)]


class TestPW004CorrectionsNotAtOnce:
    def notices(self, second: tuple[str, ...], supplied=("M2",)):
        c = CaseEvents()
        return run([*base(c), c.correction("2026-03-03", ("M2",)), c.supplied("2026-03-04", supplied),
                    c.correction("2026-03-05", second)])

    def test_a_request_during_review_is_judged_against_the_notices_before_it(self):
        """LEGAL-RULES §1 (2026-11-30): a correction requested after acceptance is judged by PW-004
        too (it neither re-anchors acceptance nor counts for PW-003)."""
        c = CaseEvents()
        events = [c.submitted("2026-03-02", materials=("M1", "M2")), c.accepted("2026-03-03"),
                  c.correction("2026-03-10", ("M3",)), c.supplied("2026-03-11", ("M3",)),
                  c.correction("2026-03-16", ("M4",))]
        [alert] = active(run(events), "PW-004")
        assert alert.evidence == ["SZ-2026-000123-3", "SZ-2026-000123-5"]
        assert "PW-003" not in rules(run(events, until="2026-04-30"))

    def test_second_notice_asking_for_an_unlisted_material(self):
        [alert] = active(self.notices(("M3",)), "PW-004")
        assert alert.evidence == ["SZ-2026-000123-2", "SZ-2026-000123-4"]
        assert "(M3)" in alert.message.en and alert.signal == "red"

    def test_asking_again_about_a_listed_material_still_deficient(self):
        assert "PW-004" not in rules(self.notices(("M2",)))

    def test_asking_about_a_material_newly_supplied_after_the_first_notice(self):
        assert "PW-004" not in rules(self.notices(("M4",), supplied=("M2", "M4")))

    def test_a_single_notice_is_never_piecemeal(self):
        c = CaseEvents()
        assert "PW-004" not in rules(run([*base(c), c.correction("2026-03-03", ("M1", "M2", "M3"))]))

    def test_first_notice_arriving_late_is_judged_in_event_time(self):
        c = CaseEvents()
        first, second = c.correction("2026-03-03", ("M2",)), c.correction("2026-03-05", ("M2", "M3"))
        in_order = active(run([*base(c), first, second]), "PW-004")
        reordered = active(run([*base(c), second, first]), "PW-004")
        assert [a.alert_id for a in in_order] == [a.alert_id for a in reordered] != []


class TestPW005DemandedTwice:
    def test_a_request_at_the_acceptances_instant_comes_after_it(self):
        """EVENTS.md ties: accepted, then corrections."""
        c = CaseEvents()
        request, accepted = c.correction("2026-03-03 10:00", ("M1",)), c.accepted("2026-03-03 10:00")
        for pair in ([request, accepted], [accepted, request]):
            assert "PW-005" in rules(run([*base(c), *pair], until="2026-03-05"))

    def test_material_already_in_the_file_after_acceptance(self):
        c = CaseEvents()
        alerts = run([*base(c), c.accepted("2026-03-03"), c.correction("2026-03-10", ("M1",))])
        [alert] = active(alerts, "PW-005")
        assert [b.cite for b in alert.legal_basis] == ["SZ-XK art. 7(7)", "过错办法 art. 12(12)"]
        assert alert.evidence == ["SZ-2026-000123-1", "SZ-2026-000123-2", "SZ-2026-000123-3"]

    def test_new_material_after_acceptance_is_not_a_repeat(self):
        c = CaseEvents()
        assert "PW-005" not in rules(run([*base(c), c.accepted("2026-03-03"), c.correction("2026-03-10", ("M4",))]))

    def test_asking_before_acceptance_is_a_correction_not_a_repeat(self):
        c = CaseEvents()
        assert "PW-005" not in rules(run([*base(c), c.correction("2026-03-03", ("M1",))]))

    def test_upper_agency_asking_for_forwarded_materials(self):
        c = CaseEvents()
        alerts = run([*base(c), c.accepted("2026-03-03"), c.forwarded("2026-03-10"), c.correction("2026-03-12", ("M2",))])
        [alert] = active(alerts, "PW-005")
        assert "XKF art. 35" in [b.cite for b in alert.legal_basis]


class TestPW006UnrelatedMaterial:
    def test_material_not_in_the_catalog(self):
        c = CaseEvents()
        [alert] = active(run([*base(c), c.correction("2026-03-03", ("M2", "M99"))]), "PW-006")
        assert "(M99)" in alert.message.en

    def test_material_in_the_catalog(self):
        c = CaseEvents()
        assert "PW-006" not in rules(run([*base(c), c.correction("2026-03-03", ("M4",))]))

    def test_item_not_in_the_catalog_is_not_judged(self):
        c = CaseEvents(item="ITEM-UNKNOWN")
        assert "PW-006" not in rules(run([*base(c), c.correction("2026-03-03", ("M99",))]))


class TestPW007WrittenReceipt:
    @pytest.mark.parametrize("receipt", [None, "", "   "])
    def test_acceptance_without_a_receipt(self, receipt):
        c = CaseEvents()
        assert "PW-007" in rules(run([*base(c), c.accepted("2026-03-03", receipt_no=receipt)]))

    def test_acceptance_with_a_receipt(self):
        c = CaseEvents()
        assert "PW-007" not in rules(run([*base(c), c.accepted("2026-03-03")]))

    def test_non_acceptance_without_a_receipt(self):
        c = CaseEvents()
        [alert] = active(run([*base(c), c.rejected("2026-03-03", receipt_no="")]), "PW-007")
        assert alert.message.en.endswith("non-acceptance without a written receipt (no receipt number)")


class TestPW008Reasons:
    def test_non_acceptance_without_reasons(self):
        c = CaseEvents()
        [alert] = active(run([*base(c), c.rejected("2026-03-03", reasons=None)]), "PW-008")
        assert "no written reasons" in alert.message.en

    def test_denial_without_telling_the_remedies(self):
        c = CaseEvents()
        alerts = run([*base(c), c.accepted("2026-03-03"), c.decided("2026-03-10", "deny", remedies_notified=False)])
        [alert] = active(alerts, "PW-008")
        assert alert.message.en.endswith("denial: review and litigation rights not notified")

    def test_denial_with_reasons_and_remedies(self):
        c = CaseEvents()
        assert "PW-008" not in rules(run([*base(c), c.accepted("2026-03-03"), c.decided("2026-03-10", "deny")]))

    def test_a_grant_needs_no_reasons(self):
        c = CaseEvents()
        alerts = run([*base(c), c.accepted("2026-03-03"), c.decided("2026-03-10", remedies_notified=False)])
        assert "PW-008" not in rules(alerts)


class TestPW015Fees:
    items = catalog({"item_code": "ITEM-FEE", "name": "x", "department": "D",
                     "fee": {"fee_code": "FEE-1", "max_amount": "100.00"}})

    def charged(self, item="ITEM-FEE", **fee):
        c = CaseEvents(item=item)
        return run([*base(c), c.accepted("2026-03-03"), c.fee("2026-03-04", **fee)], catalog=self.items)

    def test_within_the_standard(self):
        assert "PW-015" not in rules(self.charged(amount="100.00"))

    @pytest.mark.parametrize("fee, expected", [
        (dict(amount="150.00"), "amount 150.00 yuan exceeds the standard 100.00 yuan"),
        (dict(amount="10.00", deposit=True), "a deposit was taken"),
        (dict(amount="10.00", fee_code="FEE-X"), "fee FEE-X is not the published fee item"),
    ])
    def test_unlawful_fees(self, fee, expected):
        [alert] = active(self.charged(**fee), "PW-015")
        assert expected in alert.message.en

    def test_fee_on_an_item_without_fee_basis(self):
        [alert] = active(self.charged(item="ITEM-STD", amount="5.00"), "PW-015")
        assert "the item has no fee basis" in alert.message.en


class TestPW016Extensions:
    def extension(self, when="2026-03-20", **kwargs):
        c = CaseEvents()
        return run([*base(c), c.accepted("2026-03-03"), c.procedure(when, "extension", kwargs.pop("days", 10), **kwargs)])

    def test_regular_extension(self):
        assert "PW-016" not in rules(self.extension())

    @pytest.mark.parametrize("irregular, expected", [
        (dict(approved_by=None), "no approval by the agency head"),
        (dict(notified=False), "reason not told to the applicant"),
        (dict(days=15), "longer than the law allows"),
        (dict(when="2026-04-02"), "decided after the limit had run out"),
    ])
    def test_irregular_extension(self, irregular, expected):
        [alert] = active(self.extension(**irregular), "PW-016")
        assert expected in alert.message.en

    def test_repeated_extension(self):
        c = CaseEvents()
        alerts = run([*base(c), c.accepted("2026-03-03"), c.procedure("2026-03-20", "extension", 5),
                      c.procedure("2026-03-27", "extension", 5)])
        [alert] = active(alerts, "PW-016")
        assert alert.evidence == ["SZ-2026-000123-4"] and "a second extension" in alert.message.en


class TestPW017Pauses:
    @pytest.mark.parametrize("kind", ["on_site_verification", "other"])
    def test_pause_without_statutory_basis(self, kind):
        c = CaseEvents()
        [alert] = active(run([*base(c), c.accepted("2026-03-03"), c.procedure("2026-03-10", kind, 5)]), "PW-017")
        assert "XKF art. 45 does not list" in alert.message.en

    def test_pause_without_written_notice(self):
        c = CaseEvents()
        alerts = run([*base(c), c.accepted("2026-03-03"), c.procedure("2026-03-10", "testing", 5, notified=False)])
        assert "not notified to the applicant in writing" in active(alerts, "PW-017")[0].message.en

    def test_statutory_pause_with_notice(self):
        c = CaseEvents()
        assert "PW-017" not in rules(run([*base(c), c.accepted("2026-03-03"), c.procedure("2026-03-10", "testing", 5)]))


class TestPW018Backdating:
    def test_recorded_long_after_it_claims(self):
        c = CaseEvents()
        alerts = run([*base(c), c.accepted("2026-03-03 09:00", recorded="2026-03-04 15:00")])
        [alert] = active(alerts, "PW-018")
        assert alert.signal == "data" and "recorded 30 h later" in alert.message.en

    def test_recorded_soon_after(self):
        c = CaseEvents()
        assert "PW-018" not in rules(run([*base(c), c.accepted("2026-03-03 09:00", recorded="2026-03-03 11:00")]))

    def test_lag_is_configurable(self):
        c = CaseEvents()
        alerts = run([*base(c), c.accepted("2026-03-03 09:00", recorded="2026-03-03 11:00")],
                     settings=RuleSettings(backdating_lag_hours=1))
        assert "PW-018" in rules(alerts)


class TestPW019ImpossibleSequence:
    def test_normal_sequence(self):
        c = CaseEvents()
        events = [*base(c), c.accepted("2026-03-03"), c.decided("2026-03-10"), c.licence("2026-03-11"),
                  c.published("2026-03-12"), c.fee("2026-03-12", "0.00")]
        assert "PW-019" not in rules(run(events))

    def test_decision_before_acceptance(self):
        c = CaseEvents()
        alerts = run([*base(c), c.decided("2026-03-03 10:00"), c.accepted("2026-03-03 11:00")])
        assert [a.fact for a in active(alerts, "PW-019")] == ["decided_before_acceptance:SZ-2026-000123-2"]

    def test_licence_without_grant(self):
        c = CaseEvents()
        alerts = run([*base(c), c.accepted("2026-03-03"), c.licence("2026-03-05")])
        assert active(alerts, "PW-019")[0].message.en.endswith("licence issued without a grant")

    def test_event_after_withdrawal(self):
        c = CaseEvents()
        alerts = run([*base(c), c.accepted("2026-03-03"), c.withdrawn("2026-03-04"), c.correction("2026-03-05", ("M1",))])
        [alert] = active(alerts, "PW-019")
        assert alert.fact == "after_closure:SZ-2026-000123-4"
        assert alert.evidence == ["SZ-2026-000123-3", "SZ-2026-000123-4"]

    def test_a_decision_after_a_withdrawal_is_impossible_and_owes_no_licence(self):
        c = CaseEvents()
        events = [*base(c), c.accepted("2026-03-03"), c.withdrawn("2026-03-10"), c.decided("2026-03-20")]
        alerts = run(events, until="2026-06-01")
        [impossible] = active(alerts, "PW-019")
        assert impossible.fact == "after_closure:SZ-2026-000123-4"
        assert impossible.message.en.endswith("a decision after the case ended")
        assert rules(alerts) == {"PW-019"}

    @pytest.mark.parametrize("first_in_file", ["licence", "grant"])
    def test_a_licence_and_its_grant_at_the_same_instant_are_in_procedure_order(self, first_in_file):
        """EVENTS.md: ties are ordered by the procedure, not by arrival; no record at all, not one
        raised and then retracted."""
        c = CaseEvents()
        grant, licence = c.decided("2026-03-10 10:00"), c.licence("2026-03-10 10:00")
        pair = [licence, grant] if first_in_file == "licence" else [grant, licence]
        alerts = run([*base(c), c.accepted("2026-03-03"), *pair, c.published("2026-03-11")], until="2026-06-01")
        assert [a for a in alerts if a.rule == "PW-019"] == []

    def test_a_decision_and_its_acceptance_at_the_same_instant_are_in_procedure_order(self):
        c = CaseEvents()
        decided, accepted = c.decided("2026-03-03 10:00"), c.accepted("2026-03-03 10:00")
        alerts = run([*base(c), decided, accepted, c.licence("2026-03-04"), c.published("2026-03-04")],
                     until="2026-06-01")
        assert [a for a in alerts if a.rule == "PW-019"] == []

    def test_three_events_at_one_instant_in_reverse_order_schedule_the_licence_deadline(self):
        """The item was known only with the submission, which arrived last: the late submission
        must re-judge everything, so the licence deadline of the grant is kept."""
        c = CaseEvents()
        at = "2026-03-03 10:00"
        alerts = run([c.decided(at), c.accepted(at), c.submitted(at)], until="2026-06-01")
        assert {a.rule for a in active(alerts)} == {"PW-010", "PW-011"}
        assert [a for a in alerts if a.rule == "PW-019"] == []

    def test_events_arriving_out_of_order_are_not_impossible(self):
        c = CaseEvents()
        accepted, decided = c.accepted("2026-03-03"), c.decided("2026-03-10")
        alerts = run([*base(c), decided, accepted])
        assert "PW-019" not in rules(alerts)
