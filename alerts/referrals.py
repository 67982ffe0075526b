"""Referral cases (移送的候选案件) for the supervision bureau, built from red alerts (LEGAL-RULES.md §3).

A referral groups the red (红牌) alerts of one case and names, per SZ-XK art. 4, the handling
officer (直接责任), the reviewer (主要领导责任) and the approver (重要领导责任) as far as the events
identify them. It states the SZ-XK art. 12(1) finding for each of them and for the department,
the mitigating facts of art. 14 and an exemption of art. 15 recorded by an operator, and lists
the measures art. 11 allows without choosing one: people decide (art. 16) and the officer is
heard first (art. 18).

Every change a reader could act on is a new version of the same referral id; nothing is
overwritten, and nothing else makes a version (docs/referrals.md says why). Pure: the book takes
alerts, case reports and exemptions, in the order the city stage (`alerts.city`) gives them, and
returns the versions they cause.

Art. 12(1) aggravates when the same officer or department has two or more accountable
circumstances within one year. A referral counts for the later ones of its subjects while it is
open. For each of its subjects a referral cites one earlier open referral of that subject whose
first violation lies within the window before its own (the most recent such one): that is what
establishes the finding. The finding changes only when that citation stops holding (the cited
referral is withdrawn or exempted, or loses the subject) and no other earlier one does, or when a
subject that had none gains one. Each such change touches the referrals that cite the one that
changed, found through a reverse index, so adding a referral costs O(log n) searches in the
referrals of its subjects, however many there are.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left, insort
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import NamedTuple

from permitwatch.alerts import law
from permitwatch.alerts.rules.base import Rule
from permitwatch.models.alerts import Alert, LegalBasis, Message
from permitwatch.models.errors import NotFound
from permitwatch.models.referrals import (
    Aggravation,
    Exemption,
    Measure,
    Mitigation,
    Referral,
    ReferralAlert,
    ResponsibleOfficer,
)
from permitwatch.models.settings import RuleSettings

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


class NoReferral(NotFound):
    """An exemption for a case that has no referral."""

    def __init__(self, case_id: str):
        super().__init__(f"subject: case {case_id!r} has no referral to exempt")
        self.case_id = case_id


class CaseReport(NamedTuple):
    """What a referral needs to know of its case, sent by the case stage whenever the case changes."""

    case_id: str
    item_code: str | None
    department: str | None
    officers: tuple[tuple[str, str | None, tuple[str, ...]], ...]
    """(role, officer or None, ids of the events that name them) for handler, reviewer, approver."""
    remedies: tuple[tuple[str, datetime, str], ...]
    """(rule id, when, event id) of facts that delivered what a rule found missing."""
    revision: int = 0
    """How many events the case had applied: a report of a lower revision is older (a late
    event's report can reach the referral after a newer one)."""

    def shows_as(self, other: CaseReport) -> bool:
        """Whether a referral shows the same with `other` as with this: they differ at most in
        their revision."""
        return (self.case_id, self.item_code, self.department, self.officers, self.remedies) == (
            other.case_id, other.item_code, other.department, other.officers, other.remedies)


def referral_id(case_id: str) -> str:
    return "REF-" + hashlib.sha256(case_id.encode()).hexdigest()[:16]


Subject = tuple[str, str]
"""("officer", id) or ("department", code): who art. 12(1) looks at."""

Standing = tuple[datetime, tuple[Subject, ...]]
"""(first violation, subjects) under which an open referral counts for the others' art. 12(1)."""


@dataclass
class _Working:
    """The book's working copy of one referral."""

    referral_id: str
    case_id: str
    alerts: dict[str, Alert] = field(default_factory=dict)
    """Red alerts ever grouped here, last record of each (active or retracted)."""
    report: CaseReport | None = None
    exemption: Exemption | None = None
    version: int = 0
    as_of: datetime | None = None
    shown: tuple | None = None
    """What the last version showed (`_shown`), to tell whether anything visible changed."""
    standing: Standing | None = None
    findings: dict[Subject, str | None] = field(default_factory=dict)
    """Art. 12(1) per subject while open: the earlier referral cited, or None."""

    def face(self) -> _Face:
        """What a version of this referral shows now."""
        # By when they were detected: what a referral shows must not depend on the order the
        # alerts arrived in.
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


class _Shown(NamedTuple):
    """What a reader of a version could act on; a new version is made only when it changes."""

    status: str
    alerts: tuple[tuple[str, str, str], ...]
    """(alert id, rule, status) in detection order."""
    officers: tuple[tuple[str, str | None, tuple[str, ...]], ...]
    mitigations: tuple[tuple[str, datetime, str], ...]
    exemption: Exemption | None
    aggravations: tuple[tuple[str, str, str], ...]
    """(subject kind, subject, the earlier referral that establishes it) where art. 12(1) holds."""
    department: str | None
    item_code: str | None


class ReferralBook:
    """All referrals, and the history art. 12(1) looks back on."""

    def __init__(self, settings: RuleSettings, rules: Mapping[str, Rule], track_changes: bool = False):
        self.window = timedelta(days=settings.aggravation_window_days)
        self.rules = rules
        self.referrals: dict[str, _Working] = {}
        """By case id."""
        self._ids: dict[str, str] = {}
        """Case id by referral id."""
        self._open: dict[Subject, list[tuple[datetime, str]]] = {}
        """Open referrals per subject, as (first violation, referral id), sorted."""
        self._unheld: dict[Subject, list[tuple[datetime, str]]] = {}
        """Open referrals per subject for which art. 12(1) does not hold, sorted the same way."""
        self._cited_by: dict[str, set[tuple[str, Subject]]] = {}
        """Per referral id: the (case id, subject) of the referrals whose finding cites it."""
        self._changed: set[str] | None = set() if track_changes else None
        self._listed: dict[str, tuple[Alert, ReferralAlert]] = {}
        """Each alert's entry in its referral, as last built: a version lists every alert of its
        case, and a case with hundreds of them (a grant that overtook hundreds of PW-013
        applicants) rebuilt them all for every version."""

    def take_changes(self) -> set[str]:
        """Case ids of the referrals whose working copy changed since the last call (`track_changes`
        must be on)."""
        changed, self._changed = self._changed, set()
        return changed

    # ----- inputs -----

    def on_alerts(self, alerts: Sequence[Alert], report: CaseReport | None, at: datetime) -> list[Referral]:
        """Red alerts of one case found together join its referral (or, retracted, withdraw from
        it) in one version: a grant that overtook a thousand waiting applications (PW-013) is one
        change to its referral, not a thousand versions each listing every alert so far."""
        if len({alert.case_id for alert in alerts}) > 1:
            raise ValueError("on_alerts takes the alerts of one case")
        joined = [alert for alert in alerts if self._join(alert)]
        if not joined:
            return []
        working = self.referrals[joined[0].case_id]
        self._take_report(working, report)
        return self._revise(working, at)

    def _join(self, alert: Alert) -> bool:
        """Put `alert` in its case's referral, opened by an active red alert; whether it joined."""
        if alert.signal != "red":
            return False
        working = self.referrals.get(alert.case_id)
        if working is None:
            if alert.status != "active":
                return False
            working = self.referrals[alert.case_id] = _Working(referral_id(alert.case_id), alert.case_id)
            self._ids[working.referral_id] = alert.case_id
        elif alert.alert_id not in working.alerts and alert.status != "active":
            return False
        working.alerts[alert.alert_id] = alert
        return True

    def on_report(self, report: CaseReport, at: datetime) -> list[Referral]:
        """The case changed (an officer named, a late decision delivered…)."""
        working = self.referrals.get(report.case_id)
        if working is None:
            return []
        before = working.report
        if not self._take_report(working, report):
            return []
        if before is not None and report.shows_as(before):
            # Most reports: an event that names no one new and delivers nothing missing. The
            # referral and its standing stay as they are; only the revision is kept, so that an
            # older report arriving late is still refused.
            if self._changed is not None:
                self._changed.add(working.case_id)
            return []
        return self._revise(working, at)

    def on_exemption(self, case_id: str, exemption: Exemption, at: datetime) -> list[Referral]:
        """An SZ-XK art. 15 exemption; `NoReferral` when the case has none."""
        working = self.referrals.get(case_id)
        if working is None:
            raise NoReferral(case_id)
        if working.exemption is not None and working.exemption.same_decision(exemption):
            return []
        working.exemption = exemption
        return self._revise(working, at)

    @staticmethod
    def _take_report(working: _Working, report: CaseReport | None) -> bool:
        if report is None or report == working.report:
            return False
        if working.report is not None and report.revision < working.report.revision:
            return False
        working.report = report
        return True

    def find(self, referral_or_case_id: str) -> _Working | None:
        working = self.referrals.get(referral_or_case_id)
        if working is not None:
            return working
        case_id = self._ids.get(referral_or_case_id)
        return self.referrals[case_id] if case_id is not None else None

    def restore(self, workings: list[_Working]) -> None:
        """Load working copies saved elsewhere (a Kafka table) and rebuild the indexes."""
        self.referrals = {working.case_id: working for working in workings}
        self._ids = {working.referral_id: working.case_id for working in workings}
        self._open, self._unheld, self._cited_by = {}, {}, {}
        for working in workings:
            if working.standing is None:
                continue
            start, subjects = working.standing
            for subject in subjects:
                self._open.setdefault(subject, []).append((start, working.referral_id))
                cited = working.findings.get(subject)
                if cited is None:
                    self._unheld.setdefault(subject, []).append((start, working.referral_id))
                else:
                    self._cited_by.setdefault(cited, set()).add((working.case_id, subject))
        for index in (self._open, self._unheld):
            for entries in index.values():
                entries.sort()

    # ----- versions -----

    def _revise(self, working: _Working, at: datetime) -> list[Referral]:
        """The versions an input on `working` causes: its own, and those of the referrals whose
        art. 12(1) finding changed with its standing."""
        face = working.face()
        standing = (face.first_violation_at, face.subjects) if face.status == "open" else None
        touched = self._restand(working, standing) if standing != working.standing else set()
        if self._changed is not None:
            self._changed.add(working.case_id)
            self._changed |= touched
        out = []
        version = self._version(working, face, at)
        if version is not None:
            out.append(version)
        for case_id in sorted(touched - {working.case_id}):
            other = self.referrals[case_id]
            version = self._version(other, other.face(), at)
            if version is not None:
                out.append(version)
        return out

    def _restand(self, working: _Working, standing: Standing | None) -> set[str]:
        """Move `working` to its new standing in the indexes and re-establish the art. 12(1)
        findings that depend on it. Returns the case ids whose findings changed."""
        rid = working.referral_id
        if working.standing is not None:
            start, subjects = working.standing
            for subject in subjects:
                _remove(self._open[subject], (start, rid))
                cited = working.findings.get(subject)
                if cited is None:
                    _remove(self._unheld[subject], (start, rid))
                else:
                    self._cited_by[cited].discard((working.case_id, subject))
        working.standing, working.findings = standing, {}
        touched = {working.case_id}
        if standing is not None:
            start, subjects = standing
            for subject in subjects:
                insort(self._open.setdefault(subject, []), (start, rid))
            for subject in subjects:
                self._establish(working, subject)
        # Referrals citing this one keep the citation while it still holds.
        for case_id, subject in sorted(self._cited_by.pop(rid, ())):
            other = self.referrals[case_id]
            if standing is not None and subject in standing[1] and \
                    other.standing[0] - self.window <= standing[0] < other.standing[0]:
                self._cited_by.setdefault(rid, set()).add((case_id, subject))
                continue
            del other.findings[subject]
            self._establish(other, subject)
            touched.add(case_id)
        # Later referrals of its subjects that had no earlier one may have one now.
        if standing is not None:
            start, subjects = standing
            for subject in subjects:
                unheld = self._unheld.get(subject)
                if not unheld:
                    continue
                lo = bisect_left(unheld, (start, "\uffff"))
                hi = bisect_left(unheld, (start + self.window, "\uffff"))
                for _, later in unheld[lo:hi]:
                    other = self.referrals[self._ids[later]]
                    _remove(unheld, (other.standing[0], later))
                    del other.findings[subject]
                    self._establish(other, subject)
                    touched.add(other.case_id)
        return touched

    def _establish(self, working: _Working, subject: Subject) -> None:
        """Art. 12(1) for `subject` of `working`: the most recent open referral of the subject
        whose first violation lies in the window strictly before this one's. Violations at the
        same instant (deadlines that end together at midnight) are not earlier than one another."""
        start = working.standing[0]
        entries = self._open.get(subject, ())
        lo = bisect_left(entries, (start - self.window,))
        hi = bisect_left(entries, (start,))
        if hi > lo:
            cited = entries[hi - 1][1]
            working.findings[subject] = cited
            self._cited_by.setdefault(cited, set()).add((working.case_id, subject))
        else:
            working.findings[subject] = None
            insort(self._unheld.setdefault(subject, []), (start, working.referral_id))

    def _version(self, working: _Working, face: _Face, at: datetime) -> Referral | None:
        """A new version when what a reader sees changed; compared as plain data first."""
        mitigations = self._mitigations(working, face)
        aggravations = tuple((kind, subject, cited) for (kind, subject), cited in sorted(working.findings.items())
                             if cited is not None)
        shown = _Shown(face.status, tuple((a.alert_id, a.rule, a.status) for a in face.ordered), face.officer_rows,
                       mitigations, working.exemption, aggravations, face.department,
                       working.report.item_code if working.report else None)
        if shown == working.shown:
            return None
        change = _change(working.shown, shown, working.alerts)
        working.shown = shown
        working.version += 1
        # A late input (older than what the referral already showed) cannot date a version earlier.
        working.as_of = at if working.as_of is None or at > working.as_of else working.as_of
        return self._build(working, face, shown, change)

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

    def _build(self, working: _Working, face: _Face, shown: _Shown, change: Message) -> Referral:
        aggravating = [_aggravation_model(kind, subject, cited, self.window.days)
                       for kind, subject, cited in shown.aggravations]
        mitigating = []
        for rule_id, when, event_id in shown.mitigations:
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
        return Referral(
            referral_id=working.referral_id,
            version=working.version,
            status=face.status,
            change=change,
            case_id=working.case_id,
            item_code=shown.item_code or ordered[0].item_code,
            department=face.department,
            alerts=[self._listed_alert(a) for a in ordered],
            officers=[_responsible_officer(*row) for row in face.officer_rows],
            aggravating=aggravating,
            mitigating=mitigating,
            exemption=working.exemption,
            measures=list(MEASURES),
            legal_basis=list(basis.values()),
            first_violation_at=face.first_violation_at,
            as_of=working.as_of,
            right_to_be_heard=RIGHT_TO_BE_HEARD,
        )

    def _listed_alert(self, alert: Alert) -> ReferralAlert:
        """The alert's entry in its referral, built again only when the alert record changed (a
        retraction is a new record)."""
        kept = self._listed.get(alert.alert_id)
        if kept is not None and kept[0] is alert:
            return kept[1]
        if len(self._listed) >= LISTED_ALERTS_KEPT:
            self._listed.clear()
        entry = ReferralAlert(alert_id=alert.alert_id, rule=alert.rule, fact=alert.fact,
                              detected_at=alert.detected_at,
                              status="active" if alert.status == "active" else "withdrawn", message=alert.message,
                              evidence=alert.evidence)
        self._listed[alert.alert_id] = (alert, entry)
        return entry


LISTED_ALERTS_KEPT = 100_000
"""Referral entries kept built (about 1 KB each); past this, all are dropped and built again."""


def _remove(entries: list, entry: tuple) -> None:
    del entries[bisect_left(entries, entry)]


CHANGES_LISTED = 3
"""A version's change message lists the alerts of one rule added (or withdrawn) one by one when
there are at most this many, and only says how many when there are more: the alerts themselves
are in the version."""

_ROLE_ZH = {"handler": "承办人", "reviewer": "审核人", "approver": "批准人"}
_STATUS_ZH = {"open": "待处理", "withdrawn": "已撤回", "exempt": "免责"}


def _change(before: _Shown | None, after: _Shown, alerts: Mapping[str, Alert]) -> Message:
    """What a version changed, in Chinese and English, from what the two versions show."""
    zh: list[str] = []
    en: list[str] = []
    old_alerts = {alert_id: status for alert_id, _, status in before.alerts} if before else {}
    changed: dict[tuple[str, str], list[str]] = {}
    for alert_id, rule, status in after.alerts:
        if old_alerts.get(alert_id) != status:
            changed.setdefault((rule, status), []).append(alert_id)
    listed = set()
    for (rule, status), alert_ids in changed.items():
        if len(alert_ids) <= CHANGES_LISTED:
            listed.update(alert_ids)
        elif status == "active":  # the alerts are in the version, each with its message
            zh.append(f"新增红牌 {rule} {len(alert_ids)} 条")
            en.append(f"{len(alert_ids)} red alerts {rule} added")
        else:
            zh.append(f"红牌 {rule} {len(alert_ids)} 条已撤回")
            en.append(f"{len(alert_ids)} red alerts {rule} retracted")
    for alert_id, rule, status in after.alerts:
        if alert_id not in listed:
            continue
        if status == "active":
            message = alerts[alert_id].message
            zh.append(f"新增红牌 {rule}: {message.zh}")
            en.append(f"red alert {rule} added: {message.en}")
        else:
            zh.append(f"红牌 {rule} 已撤回")
            en.append(f"red alert {rule} retracted")
    if before is not None and before.status != after.status and after.status != "exempt":
        zh.append(f"状态: {_STATUS_ZH[before.status]} → {_STATUS_ZH[after.status]}")
        en.append(f"status: {before.status} → {after.status}")
    if before is not None and before.officers != after.officers:
        old = {role: officer for role, officer, _ in before.officers}
        for role, officer, _ in after.officers:
            if officer and officer != old.get(role):
                verb_zh, verb_en = ("认定", "named") if old.get(role) is None else ("更正为", "corrected to")
                zh.append(f"{_ROLE_ZH[role]}{verb_zh} {officer}")
                en.append(f"{role} {verb_en} {officer}")
    if before is not None and before.mitigations != after.mitigations:
        for rule_id, when, _ in after.mitigations:
            if rule_id not in {m[0] for m in before.mitigations}:
                zh.append(f"从轻情节: {rule_id} 事项已逾期补正 ({when:%Y-%m-%d})")
                en.append(f"mitigation: what {rule_id} found missing was delivered late ({when:%Y-%m-%d})")
    if after.exemption is not None and (before is None or before.exemption != after.exemption):
        exemption = after.exemption
        zh.append(f"记录免责情形 ({exemption.basis}): {exemption.reason}")
        en.append(f"exemption recorded ({exemption.basis}) by {exemption.recorded_by}")
    old_findings = {(kind, subject): cited for kind, subject, cited in before.aggravations} if before else {}
    new_findings = {(kind, subject): cited for kind, subject, cited in after.aggravations}
    for key in sorted(old_findings.keys() | new_findings.keys()):
        old, new = old_findings.get(key), new_findings.get(key)
        if old == new:
            continue
        kind, subject = key
        if new is None:
            zh.append(f"从重情节 (第十二条第一项) 对 {subject} 不再成立")
            en.append(f"SZ-XK art. 12(1) no longer holds for {kind} {subject}")
        else:
            zh.append(f"从重情节 (第十二条第一项) 对 {subject} 成立, 依据 {new}")
            en.append(f"SZ-XK art. 12(1) holds for {kind} {subject}, established by {new}")
    if not zh:
        zh.append("案件情况更新")
        en.append("case facts updated")
    return Message(zh="; ".join(zh), en="; ".join(en))


# A referral's officers and aggravations recur from version to version and across the referrals
# of one officer; the models are immutable, so versions share them instead of validating anew.

@lru_cache(maxsize=4096)
def _responsible_officer(role: str, officer: str | None, evidence: tuple[str, ...]) -> ResponsibleOfficer:
    return ResponsibleOfficer(role=role, responsibility=ROLES[role][0], responsibility_zh=ROLES[role][1],
                              officer=officer, known=officer is not None, evidence=list(evidence))


@lru_cache(maxsize=4096)
def _aggravation_model(kind: str, subject: str, cited: str, window_days: int) -> Aggravation:
    return Aggravation(subject_kind=kind, subject=subject, earlier_referrals=[cited], window_days=window_days)
