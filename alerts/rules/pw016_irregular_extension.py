"""PW-016 违规延长审批期限: an extension without the required approver, longer than allowed,
repeated, not notified to the applicant, or decided after the limit had run out. Such an
extension moves the deadline only as far as the law allows (the deadlines module)."""

from __future__ import annotations

from permitwatch.alerts import law
from permitwatch.alerts.rules.base import DEADLINE_INPUTS, CaseView, Finding, Rule

PROBLEMS = {
    "repeated": ("重复延长", "a second extension"),
    "no_approver": ("未经负责人批准", "no approval by the agency head"),
    "not_notified": ("未告知申请人延长理由", "reason not told to the applicant"),
    "too_long": ("延长超过法定上限", "longer than the law allows"),
    "after_deadline": ("法定期限届满后才延长", "decided after the limit had run out"),
}


def evaluate(view: CaseView):
    for index, start in enumerate(view.case.procedure_starts):
        if start.kind != "extension":
            continue
        check = view.extension_check(index)
        if not check.problems:
            continue
        limit = view.clock.extension_limit.value
        zh = "; ".join(PROBLEMS[p][0] for p in check.problems)
        en = "; ".join(PROBLEMS[p][1] for p in check.problems)
        asked_zh, asked_en = ("未载明天数", "no length stated") if start.working_days is None else \
            (f"{start.working_days} 个工作日", f"{start.working_days} WD asked")
        yield Finding(
            f"extension:{start.event_id}:{'+'.join(check.problems)}",
            (start.event_id,),
            start.time,
            f"违规延长审批期限 (申请 {asked_zh}, 法定至多 {limit}, 计入 {check.allowed}): {zh}",
            f"irregular extension ({asked_en}, at most {limit} allowed, {check.allowed} counted): {en}",
        )


RULE = Rule(
    id="PW-016",
    signal="red",
    title_zh="违规延长审批期限",
    title_en="irregular extension",
    basis=(law.XKF_42,),
    parameters=("extension_limit", "joint_extension_limit"),
    evaluate=evaluate,
    triggers=DEADLINE_INPUTS,
)
