"""PW-019 不可能的办理顺序: a decision before acceptance, acceptance before submission, a licence
without a grant, or anything after the case ended (apart from issuing, publishing and charging).

Two events of a case at the same instant are in procedure order (EVENTS.md), whichever arrived
first: a licence and the grant it follows may come in either order. So a finding is emitted only
once the clock has passed its instant, when everything at that instant is known."""

from __future__ import annotations

from datetime import datetime

from permitwatch.alerts import law
from permitwatch.alerts.case import CaseState, Fact
from permitwatch.alerts.clock import JUST_AFTER
from permitwatch.alerts.rules.base import CaseView, Due, Finding, Rule
from permitwatch.models import events as ev


def _finding(fact: str, evidence: tuple[str, ...], at: datetime, zh: str, en: str) -> Finding:
    return Finding(fact, evidence, at, f"不可能的办理顺序: {zh}", f"impossible sequence: {en}")


def evaluate(view: CaseView):
    now = view.now
    for finding in _findings(view):
        yield finding if finding.detected_at < now else Due(finding.detected_at + JUST_AFTER)


def _findings(view: CaseView) -> list[Finding]:
    case = view.case
    found: list[Finding] = []
    decision, accepted, submitted = case.decision, case.accepted, case.submitted
    if decision is not None and ((accepted is not None and accepted.time > decision.time) or (
            accepted is None and (view.anchor is None or not view.anchor.deemed))):
        # One finding whether the acceptance never came or came after: the decision had none before it.
        found.append(_finding(f"decided_before_acceptance:{decision.event_id}",
                              (*((accepted.event_id,) if accepted else ()), decision.event_id), decision.time,
                              "作出决定前未受理", "decision made before any acceptance"))
    if accepted is not None and submitted is not None and accepted.time < submitted.time:
        found.append(_finding(f"accepted_before_submission:{accepted.event_id}",
                              (submitted.event_id, accepted.event_id), accepted.time,
                              "受理早于申请", "acceptance before submission"))
    licence = case.licence
    if licence is not None:
        grant = case.grant
        if grant is None or grant.time > licence.time:
            found.append(_finding(f"licence_without_grant:{licence.event_id}", (licence.event_id,), licence.time,
                                  "未准予许可即颁发证件", "licence issued without a grant"))
    if case.closure is not None and case.last_time > case.closure.time:
        found.extend(_after_closure(case, case.closure, decision))
    return found


def _after_closure(case: CaseState, end: Fact, decision) -> list[Finding]:
    # An acceptance after the deciding event is already "decision before acceptance" above.
    accepted = case.accepted if decision is None or end.event_id != decision.event_id else None
    later: list[tuple[datetime, str, str, str]] = []
    for notice in case.notices:
        later.append((notice.time, notice.event_id, "补正告知", "correction notice"))
    for receipt in case.receipts:
        later.append((receipt.time, receipt.event_id, "补正材料", "materials supplied"))
    for start in case.procedure_starts:
        later.append((start.time, start.event_id, "特别程序", "special procedure"))
    decided_zh, decided_en = ("再次决定", "another decision") if decision is not None and \
        end.event_id == decision.event_id else ("作出决定", "a decision")
    for other in case.decisions:
        if other.event_id != end.event_id:
            later.append((other.time, other.event_id, decided_zh, decided_en))
    for fact, zh, en in ((case.withdrawn, "撤回申请", "withdrawal"), (case.rejected, "不予受理", "non-acceptance")):
        if fact is not None and fact.event_id != end.event_id:
            later.append((fact.time, fact.event_id, zh, en))
    for fact, zh, en in ((accepted, "受理", "acceptance"), (case.forwarded, "报送初审", "forwarding"),
                         (case.hearing_requested, "听证申请", "hearing request"), (case.hearing_held, "听证", "hearing")):
        if fact is not None:
            later.append((fact.time, fact.event_id, zh, en))
    return [
        _finding(f"after_closure:{event_id}", (end.event_id, event_id), time, f"办结后仍有{zh}", f"{en} after the case ended")
        for time, event_id, zh, en in later
        if time > end.time
    ]


RULE = Rule(
    id="PW-019",
    signal="data",
    title_zh="不可能的办理顺序",
    title_en="impossible sequence",
    basis=(law.DATA_INTEGRITY,),
    evaluate=evaluate,
    timed=True,
    judged="case facts, once every event of their instant is in",
    triggers=frozenset(ev.LICENSING_MODELS) - {ev.FeeCharged, ev.StepCompleted, ev.HearingNotified, ev.ResultPublished},
)
