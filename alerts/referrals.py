"""Referral cases (移送的候选案件) for the supervision bureau, built from red alerts (LEGAL-RULES.md §3).

A referral groups the red (红牌) alerts of one case and names, per SZ-XK art. 4, the handling
officer (直接责任), the reviewer (主要领导责任) and the approver (重要领导责任) as far as the events
identify them. It records the aggravating circumstance of art. 12(1), the mitigating facts of
art. 14 and an exemption of art. 15 recorded by an operator, and lists the measures art. 11
allows without choosing one: people decide (art. 16) and the officer is heard first (art. 18).

Every change is a new version of the same referral id; nothing is overwritten. Pure: the book
consumes alerts, case reports and exemptions, and returns the versions they cause.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left, bisect_right, insort
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import NamedTuple

from alerts import law
from alerts.rules.base import Rule
from models.alerts import Alert, LegalBasis, Message
from models.referrals import (
    Aggravation,
    Exemption,
    Measure,
    Mitigation,
    Referral,
    ReferralAlert,
    ResponsibleOfficer,
)
from models.settings import RuleSettings

ROLES = {
    "handler": ("direct", "直接责任 (承办人)"),
    "reviewer": ("principal_leadership", "主要领导责任 (审核人)"),
    "approver": ("important_leadership", "重要领导责任 (批准人)"),
}

MEASURES = (
    Measure(code="agency.written_examination", applies_to="agency", zh="责令作出书面检查", en="written self-examination"),
    Measure(code="agency.criticism", applies_to="agency", zh="通报批评", en="circulated criticism"),
    Measure(code="agency.no_annual_award", applies_to="agency", zh="取消年度评优、评先资格",
            en="excluded from the year's awards"),
    Measure(code="officer.written_examination", applies_to="officer", zh="责令作出书面检查",
            en="written self-examination"),
    Measure(code="officer.criticism", applies_to="officer", zh="给予通报批评", en="circulated criticism"),
    Measure(code="officer.reassignment", applies_to="officer", zh="调离工作岗位", en="reassignment"),
    Measure(code="officer.removal", applies_to="officer", zh="免职", en="removal from post"),
    Measure(code="officer.incompetent_rating", applies_to="officer", zh="年度考核定为不称职",
            en="annual rating 'incompetent'"),
    Measure(code="officer.demotion", applies_to="officer", zh="降职", en="demotion"),
    Measure(code="officer.dismissal", applies_to="officer", zh="辞退", en="dismissal"),
    Measure(code="officer.sanction", applies_to="officer", zh="给予处分", en="disciplinary sanction"),
)

RIGHT_TO_BE_HEARD = Message(
    zh="依《深圳市实施行政许可责任追究办法》第十八条, 责任人员享有陈述权和申辩权, 追究机关应当听取其陈述和申辩; 本候选案件不构成追究决定。",
    en="Under SZ-XK art. 18 the officers named have the right to state and defend their case, and must be "
    "heard; this candidate referral is not a decision.",
)


class CaseReport(NamedTuple):
    """What a referral needs to know of its case, sent by the engine whenever the case changes."""

    case_id: str
    item_code: str | None
    department: str | None
    officers: tuple[tuple[str, str | None, tuple[str, ...]], ...]
    """(role, officer or None, ids of the events that name them) for handler, reviewer, approver."""
    remedies: tuple[tuple[str, datetime, str], ...]
    """(rule id, when, event id) of facts that delivered what a rule found missing."""
    revision: int = 0
    """How many events the case had applied: a report of a lower revision is older (on Kafka a
    report can reach the referral after a newer one)."""


class AlertInput(NamedTuple):
    """A red alert for the referral of its case, with the case's report when it is at hand."""

    alert: Alert
    report: CaseReport | None


class ReportInput(NamedTuple):
    """The case of a referral changed without raising a red alert."""

    report: CaseReport
    at: datetime


class ExemptionInput(NamedTuple):
    case_id: str
    exemption: Exemption


ReferralInput = AlertInput | ReportInput | ExemptionInput


def referral_id(case_id: str) -> str:
    return "REF-" + hashlib.sha256(case_id.encode()).hexdigest()[:16]


CITED = 10
"""How many earlier referrals an aggravation cites by id (all of them are counted)."""

Subject = tuple[str, str]
"""("officer", id) or ("department", code): who art. 12(1) looks at."""


@dataclass
class _Working:
    """The book's working copy of one referral."""

    referral_id: str
    case_id: str
    alerts: dict[str, Alert] = field(default_factory=dict)
    """Red alerts ever grouped here, last record of each (active or retracted)."""
    report: CaseReport | None = None
    exemption: Exemption | None = None
    last: Referral | None = None
    last_key: tuple | None = None
    indexed: tuple[datetime, tuple[Subject, ...]] | None = None
    """(first violation, subjects) under which it counts for others' aggravation, while open."""

    def face(self) -> _Face:
        """What a version of this referral shows now (computed once per version considered)."""
        # By when they were detected: what a referral shows must not depend on the order the
        # alerts arrived in (on Kafka, from several partitions).
        ordered = sorted(self.alerts.values(), key=lambda a: (a.detected_at, a.alert_id))
        active = [a for a in ordered if a.status == "active"]
        report = self.report
        if report is not None:
            named = {role: officer for role, officer, _ in report.officers if officer}
        else:
            named = {}
            for alert in ordered:
                for role in ROLES:
                    officer = getattr(alert.officers, role)
                    if officer:
                        named[role] = officer
        department = report.department if report is not None and report.department else next(
            (a.department for a in ordered if a.department), None)
        evidence = {role: ids for role, _, ids in report.officers} if report is not None else {}
        return _Face(
            ordered=ordered,
            active=active,
            status="exempt" if self.exemption is not None else "open" if active else "withdrawn",
            first_violation_at=(active or ordered)[0].detected_at,
            department=department,
            officer_rows=tuple((role, named.get(role), tuple(evidence.get(role, ()))) for role in ROLES),
            subjects=(*(("officer", officer) for officer in sorted(set(named.values()))),
                      *((("department", department),) if department else ())),
        )


@dataclass(frozen=True, slots=True)
class _Face:
    ordered: list[Alert]
    """Every alert ever grouped (last record of each), by detection time."""
    active: list[Alert]
    status: str
    first_violation_at: datetime
    department: str | None
    officer_rows: tuple[tuple[str, str | None, tuple[str, ...]], ...]
    """(role, officer, ids of the events naming them): from the latest report, else the alerts."""
    subjects: tuple[Subject, ...]


class ReferralBook:
    """All referrals, and the history art. 12(1) looks back on."""

    def __init__(self, settings: RuleSettings, rules: Mapping[str, Rule]):
        self.window = timedelta(days=settings.aggravation_window_days)
        self.rules = rules
        self.referrals: dict[str, _Working] = {}
        # Open referrals per subject, sorted by (first violation, referral id).
        self._open: dict[Subject, list[tuple[datetime, str, str]]] = {}

    # ----- inputs -----

    def take(self, given: ReferralInput) -> list[Referral]:
        """Apply one input; KeyError for an exemption of a case that has no referral."""
        if isinstance(given, AlertInput):
            return self.on_alert(given.alert, given.report)
        if isinstance(given, ReportInput):
            return self.on_report(given.report, given.at)
        return self.on_exemption(given.case_id, given.exemption)

    def on_alert(self, alert: Alert, report: CaseReport | None) -> list[Referral]:
        """A red alert joins (or, retracted, withdraws from) its case's referral."""
        if alert.signal != "red":
            return []
        working = self.referrals.get(alert.case_id)
        if working is None:
            if alert.status != "active":
                return []
            working = self.referrals[alert.case_id] = _Working(referral_id(alert.case_id), alert.case_id)
        elif alert.alert_id not in working.alerts and alert.status != "active":
            return []
        working.alerts[alert.alert_id] = alert
        if report is not None and (working.report is None or report.revision >= working.report.revision):
            working.report = report
        if alert.status == "active":
            change = Message(zh=f"新增红牌 {alert.rule}: {alert.message.zh}", en=f"red alert {alert.rule} added: "
                             f"{alert.message.en}")
        else:
            change = Message(zh=f"红牌 {alert.rule} 已撤回", en=f"red alert {alert.rule} retracted")
        return self._publish(working, change, alert.detected_at)

    def on_report(self, report: CaseReport, at: datetime) -> list[Referral]:
        """The case changed (an officer named, a late decision delivered…)."""
        working = self.referrals.get(report.case_id)
        if working is None or working.report == report:
            return []
        if working.report is not None and report.revision < working.report.revision:
            return []
        previous, working.report = working.report, report
        if previous is not None:
            rules = {alert.rule for alert in working.alerts.values() if alert.status == "active"}
            if _shown(previous, rules) == _shown(report, rules):
                return []  # nothing a reader of the referral sees has changed
        return self._publish(working, Message(zh="案件情况更新", en="case facts updated"), at)

    def on_exemption(self, case_id: str, exemption: Exemption) -> list[Referral]:
        working = self.referrals.get(case_id)
        if working is None:
            raise KeyError(case_id)
        working.exemption = exemption
        change = Message(zh=f"记录免责情形 ({exemption.basis}): {exemption.reason}",
                         en=f"exemption recorded ({exemption.basis}) by {exemption.recorded_by}")
        return self._publish(working, change, exemption.recorded_at)

    def restore(self, workings: list[_Working]) -> None:
        """Load working copies saved elsewhere (a Kafka table) and rebuild the art. 12(1) index."""
        self.referrals = {working.case_id: working for working in workings}
        self._open = {}
        for working in workings:
            if working.indexed is not None:
                start, subjects = working.indexed
                for subject in subjects:
                    self._open.setdefault(subject, []).append((start, working.referral_id, working.case_id))
        for entries in self._open.values():
            entries.sort()

    def find(self, referral_or_case_id: str) -> _Working | None:
        working = self.referrals.get(referral_or_case_id)
        if working is not None:
            return working
        return next((w for w in self.referrals.values() if w.referral_id == referral_or_case_id), None)

    # ----- versions -----

    def _publish(self, working: _Working, change: Message, at: datetime) -> list[Referral]:
        """A new version if anything changed; when its standing for art. 12(1) changed, also the
        later referrals of the same subjects within the window, whose aggravation may change."""
        before = working.indexed
        out = []
        version = self._version(working, change, at)
        if version is not None:
            out.append(version)
        if working.indexed != before:
            cascade = Message(zh="关联案件变化, 从重情节重新认定", en="aggravation re-assessed after a related "
                              "referral changed")
            for other in self._later(working, before):
                version = self._version(other, cascade, at)
                if version is not None:
                    out.append(version)
        return out

    def _later(self, working: _Working, before: tuple | None) -> list[_Working]:
        """Open referrals of the subjects `working` had or has, strictly after it within the window."""
        cases: set[str] = set()
        for standing in (before, working.indexed):
            if standing is None:
                continue
            start, subjects = standing
            for subject in subjects:
                entries = self._open.get(subject, [])
                lo = bisect_right(entries, (start, "\uffff"))
                hi = bisect_right(entries, (start + self.window, "\uffff"))
                cases.update(case_id for _, _, case_id in entries[lo:hi])
        cases.discard(working.case_id)
        return [self.referrals[c] for c in sorted(cases)]

    def _version(self, working: _Working, change: Message, at: datetime) -> Referral | None:
        """A new version when what a reader sees changed; compared as plain data first, since most
        case updates change nothing a referral shows."""
        face = working.face()
        self._reindex(working, face)
        aggravating = self._aggravation(working)
        mitigating = self._mitigations(working, face)
        key = (face.status, tuple((a.alert_id, a.status) for a in working.alerts.values()),
               face.officer_rows, aggravating, mitigating, working.exemption,
               face.department, working.report.item_code if working.report else None)
        if key == working.last_key:
            return None
        working.last_key = key
        working.last = self._build(working, face, change, at, aggravating, mitigating)
        return working.last

    def _reindex(self, working: _Working, face: _Face) -> None:
        standing = (face.first_violation_at, face.subjects) if face.status == "open" else None
        if standing == working.indexed:
            return
        if working.indexed is not None:
            start, subjects = working.indexed
            for subject in subjects:
                self._open[subject].remove((start, working.referral_id, working.case_id))
        if standing is not None:
            start, subjects = standing
            for subject in subjects:
                insort(self._open.setdefault(subject, []), (start, working.referral_id, working.case_id))
        working.indexed = standing

    def _aggravation(self, working: _Working) -> tuple[tuple[str, str, int, tuple[str, ...]], ...]:
        """SZ-XK art. 12(1): open referrals of the same officer or department whose first violation
        lies in the window strictly before this one's. Violations at the same instant (deadlines
        that end together at midnight) are not earlier than one another."""
        if working.indexed is None:
            return ()
        start, subjects = working.indexed
        found = []
        for kind, subject in subjects:
            entries = self._open.get((kind, subject), [])
            lo = bisect_left(entries, (start - self.window,))
            hi = bisect_left(entries, (start,))
            if hi > lo:
                found.append((kind, subject, hi - lo, tuple(rid for _, rid, _ in entries[max(lo, hi - CITED):hi])))
        return tuple(found)

    def _mitigations(self, working: _Working, face: _Face) -> tuple[tuple[str, datetime, str], ...]:
        """SZ-XK art. 14: what was missing was delivered after all (late): (rule, when, event)."""
        if working.report is None or not working.report.remedies:
            return ()
        remedies = {rule_id: (at, event_id) for rule_id, at, event_id in working.report.remedies}
        found = []
        for alert in face.active:
            remedy = remedies.get(alert.rule)
            if remedy is not None and alert.rule in self.rules and remedy[0] >= alert.detected_at:
                found.append((alert.rule, *remedy))
        return tuple(found)

    def _build(self, working: _Working, face: _Face, change: Message, at: datetime, aggravation: tuple,
               mitigation: tuple) -> Referral:
        aggravating = [_aggravation_model(*row, self.window.days) for row in aggravation]
        mitigating = []
        for rule_id, when, event_id in mitigation:
            rule = self.rules[rule_id]
            mitigating.append(Mitigation(
                kind="delivered_late",
                description=Message(zh=f"{rule_id}: {rule.remedy_zh} ({when:%Y-%m-%d %H:%M})",
                                    en=f"{rule_id}: {rule.remedy_en} ({when:%Y-%m-%d %H:%M})"),
                at=when,
                evidence=[event_id],
            ))
        ordered = face.ordered
        basis: dict[str, LegalBasis] = {}
        for alert in ordered:
            for item in alert.legal_basis:
                basis.setdefault(item.cite, item)
        extra = [law.SZ_XK_4, law.SZ_XK_11, law.SZ_XK_18]
        if aggravating:
            extra.append(law.SZ_XK_12_1)
        if mitigating:
            extra.append(law.SZ_XK_14)
        if working.exemption is not None:
            extra.append(law.SZ_XK_15[working.exemption.ground])
        for item in extra:
            basis.setdefault(item.cite, item)
        sample = ordered[0]
        report = working.report
        return Referral(
            referral_id=working.referral_id,
            version=1 if working.last is None else working.last.version + 1,
            status=face.status,
            change=change,
            case_id=working.case_id,
            item_code=(report.item_code if report else None) or sample.item_code,
            department=face.department,
            alerts=[
                ReferralAlert(alert_id=a.alert_id, rule=a.rule, fact=a.fact, detected_at=a.detected_at,
                              status="active" if a.status == "active" else "withdrawn", message=a.message,
                              evidence=a.evidence)
                for a in ordered
            ],
            officers=[_responsible_officer(*row) for row in face.officer_rows],
            aggravating=aggravating,
            mitigating=mitigating,
            exemption=working.exemption,
            measures=list(MEASURES),
            legal_basis=list(basis.values()),
            first_violation_at=face.first_violation_at,
            as_of=at,
            right_to_be_heard=RIGHT_TO_BE_HEARD,
        )


def _shown(report: CaseReport, rules: set[str]) -> tuple:
    """The part of a case report a referral shows: officers, and remedies of its active `rules`."""
    return (report.officers, report.department, report.item_code,
            tuple(remedy for remedy in report.remedies if remedy[0] in rules))


# A referral's officers and aggravations recur from version to version and across the referrals
# of one officer; the models are immutable, so versions share them instead of validating anew.

@lru_cache(maxsize=4096)
def _responsible_officer(role: str, officer: str | None, evidence: tuple[str, ...]) -> ResponsibleOfficer:
    return ResponsibleOfficer(role=role, responsibility=ROLES[role][0], responsibility_zh=ROLES[role][1],
                              officer=officer, known=officer is not None, evidence=list(evidence))


@lru_cache(maxsize=4096)
def _aggravation_model(kind: str, subject: str, count: int, cited: tuple[str, ...], window_days: int) -> Aggravation:
    return Aggravation(subject_kind=kind, subject=subject, earlier_count=count, earlier_referrals=list(cited),
                       window_days=window_days)
