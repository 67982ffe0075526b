"""Referral cases: grouping red alerts, naming officers (SZ-XK art. 4), aggravation (art. 12(1)),
mitigation (art. 14), exemption (art. 15), versions that are never overwritten."""

from __future__ import annotations

from datetime import timedelta

import orjson

from permitwatch.alerts.city import AlertInput
from permitwatch.alerts.referrals import CaseReport, ReferralBook
from permitwatch.alerts.rules import RULES_BY_ID
from permitwatch.models.common import json_line
from permitwatch.models.settings import RuleSettings
from permitwatch.streams.kafka.wire import CityWork, decode_city_input, encode_city_input
from tests.factory import CaseEvents, moment
from tests.harness import run_all
from tests.scenarios import ITEMS, late_case


def latest(referrals):
    return {r.referral_id: r for r in referrals}


def test_overdue_decision_and_late_licence_make_one_referral_with_both_alerts_and_officers():
    _, events = late_case()
    out = run_all(events, until="2026-07-01")
    [referral] = latest(out.referrals).values()
    assert referral.status == "open" and referral.case_id == "SZ-A"
    assert [a.rule for a in referral.alerts] == ["PW-001", "PW-010"]
    officers = {o.role: (o.officer, o.responsibility, o.evidence) for o in referral.officers}
    # The evidence is the first event naming each officer (the submission names the handler).
    assert officers == {
        "handler": ("o-handler", "direct", ["SZ-A-1"]),
        "reviewer": ("o-reviewer", "principal_leadership", ["SZ-A-3"]),
        "approver": ("o-approver", "important_leadership", ["SZ-A-4"]),
    }
    assert {m.code for m in referral.measures} >= {"officer.sanction", "agency.criticism"}
    assert "SZ-XK art. 18" in [b.cite for b in referral.legal_basis]
    # Versions only grow: each change is a new version of the same id.
    versions = [r.version for r in out.referrals]
    assert versions == list(range(1, len(versions) + 1))


def test_mitigation_records_the_late_delivery():
    _, events = late_case()
    referral = next(iter(latest(run_all(events, until="2026-07-01").referrals).values()))
    described = {m.description.en.split(":")[0]: m for m in referral.mitigating}
    assert set(described) == {"PW-001", "PW-010"}
    assert described["PW-001"].evidence == ["SZ-A-4"] and described["PW-001"].at == moment("2026-04-11 10:00")


def test_unknown_officers_are_said_to_be_unknown():
    c = CaseEvents("SZ-U")
    events = [c.submitted("2026-03-02", officer="o-h"), c.accepted("2026-03-03", officer="o-h")]
    [referral] = latest(run_all(events, until="2026-04-02").referrals).values()
    known = {o.role: o.known for o in referral.officers}
    assert known == {"handler": True, "reviewer": False, "approver": False}


def test_same_officer_again_200_days_later_is_aggravated_400_days_later_is_not():
    def pair(officer: str, gap_days: int) -> list:
        people = dict(officer=officer, department=f"D-{officer}", reviewer=f"r-{officer}", approver=f"a-{officer}")
        second_start = (moment("2026-01-05") + timedelta(days=gap_days)).date().isoformat()
        return [*late_case(f"{officer}-1", start="2026-01-05", **people)[1],
                *late_case(f"{officer}-2", start=second_start, **people)[1]]

    out = run_all([*pair("o-near", 200), *pair("o-far", 400)], until="2027-06-30")
    final = {r.case_id: r for r in latest(out.referrals).values()}
    assert final["o-near-1"].aggravating == [] and final["o-far-1"].aggravating == []
    near = {a.subject_kind: a for a in final["o-near-2"].aggravating}
    assert set(near) == {"officer", "department"}
    assert near["officer"].earlier_referrals == [final["o-near-1"].referral_id]
    assert {a.subject for a in final["o-near-2"].aggravating if a.subject_kind == "officer"} == {
        "o-near", "r-o-near", "a-o-near"}
    assert final["o-far-2"].aggravating == []
    assert "SZ-XK art. 12(1)" in [b.cite for b in final["o-near-2"].legal_basis]


def test_a_retraction_withdraws_the_alert_in_a_new_version():
    a, b = CaseEvents("SZ-A"), CaseEvents("SZ-B")
    out = run_all([a.submitted("2026-03-02"), a.accepted("2026-03-03"), b.submitted("2026-04-10"),
                   a.decided("2026-03-30 10:00")])
    versions = [r for r in out.referrals if r.case_id == "SZ-A"]
    assert [(v.version, v.status) for v in versions] == [(1, "open"), (2, "withdrawn")]
    assert versions[1].alerts[0].status == "withdrawn" and versions[1].referral_id == versions[0].referral_id


def test_an_exemption_is_recorded_as_a_new_version():
    c, events = late_case()
    out = run_all([*events, c.exemption("2026-07-02")], until="2026-07-01")
    last = out.referrals[-1]
    assert last.status == "exempt" and last.exemption.basis == "SZ-XK art. 15(3)"
    assert last.exemption.recorded_by == "op-7" and last.version == out.referrals[-2].version + 1


def test_replaying_twice_gives_identical_referrals():
    _, first = late_case("SZ-1")
    _, second = late_case("SZ-2", start="2026-03-20")
    lines = [b"".join(json_line(r) for r in run_all([*first, *second], until="2026-08-01").referrals) for _ in (1, 2)]
    assert lines[0] == lines[1] and lines[0]


def test_the_red_alerts_one_event_raises_are_one_version():
    """A second correction notice asking for a material the first did not list and the catalog
    does not know: PW-004 and PW-006 at once, one change to the referral."""
    c = CaseEvents("SZ-TWO")
    events = [c.submitted("2026-03-02 09:00", materials=("M1", "M2")), c.correction("2026-03-03 10:00", ("M2",)),
              c.supplied("2026-03-04 10:00", ("M2",)), c.correction("2026-03-05 10:00", ("M9",))]
    [version] = run_all(events, until="2026-03-06", catalog=ITEMS).referrals
    assert sorted(a.rule for a in version.alerts) == ["PW-004", "PW-006"]
    assert version.change.en.count("red alert") == 2


def test_a_city_input_written_before_alerts_were_grouped_is_read():
    """The Kafka city topic and the city stage's queue hold inputs as JSON: one alert per input
    until 2026-12-01."""
    c = CaseEvents("SZ-ONE")
    events = [c.submitted("2026-03-02 09:00", materials=("M1", "M2")), c.correction("2026-03-03 10:00", ("M2",)),
              c.supplied("2026-03-04 10:00", ("M2",)), c.correction("2026-03-05 10:00", ("M9",))]
    alerts = [a for a in run_all(events, until="2026-03-06", catalog=ITEMS).alerts if a.signal == "red"]
    given = AlertInput(tuple(alerts), None, alerts[0].detected_at)
    body = orjson.loads(encode_city_input(CityWork(given, 3, None)))
    assert decode_city_input(orjson.dumps(body)) == CityWork(given, 3, None)
    old = {**{k: v for k, v in body.items() if k != "alerts"}, "kind": "alert", "alert": body["alerts"][0]}
    assert decode_city_input(orjson.dumps(old)).given.found == tuple(alerts[:1])


def test_a_report_that_changes_only_its_revision_makes_no_version_but_is_kept_against_older_ones():
    """Most reports a referral gets say what it already shows (an event named no one new): no
    version and no new standing, but the revision is kept, so that an older report arriving late
    is still refused rather than shown."""
    _, events = late_case()
    red = [a for a in run_all(events, until="2026-07-01").alerts if a.signal == "red" and a.status == "active"]
    book = ReferralBook(RuleSettings(), RULES_BY_ID, track_changes=True)
    officers = (("handler", "o-handler", ("SZ-A-1",)), ("reviewer", None, ()), ("approver", None, ()))
    report = CaseReport("SZ-A", None, "D-MARKET", officers, (), revision=3)
    at = moment("2026-07-01")
    [first] = book.on_alerts(red[:1], report, at)
    book.take_changes()
    assert book.on_report(report._replace(revision=5), at) == []
    assert book.take_changes() == {"SZ-A"} and book.find("SZ-A").report.revision == 5
    renamed = (("handler", "o-other", ("SZ-A-2",)), *officers[1:])
    assert book.on_report(report._replace(revision=4, officers=renamed), at) == []  # older: refused
    [second] = book.on_report(report._replace(revision=6, officers=renamed), at)
    assert (first.version, second.version) == (1, 2)
    assert {o.role: o.officer for o in second.officers}["handler"] == "o-other"
