"""PW-001 逾期未作出行政许可决定: no decision by the statutory decision deadline."""

from __future__ import annotations

from permitwatch.alerts import law
from permitwatch.alerts.rules.base import CLOSING, DEADLINE_INPUTS, CaseView, Finding, Rule, judge_deadline


def evaluate(view: CaseView):
    deadline = view.decision_deadline
    if deadline is None:
        if view.anchor is None:
            yield from view.until_accepted()
        return
    case = view.case
    verdict = judge_deadline(deadline, case.closed_at, view.now)
    if verdict is True:
        decision = case.decision
        late = (decision.event_id,) if decision and decision.time >= deadline.instant else ()
        yield Finding(
            f"decision_due:{deadline.last_day}",
            (*deadline.sources, *late),
            deadline.instant,
            f"超过法定办理时限 ({deadline.last_day}) 未作出行政许可决定",
            f"decision overdue since {deadline.instant:%Y-%m-%d %H:%M} (statutory limit, last legal day "
            f"{deadline.last_day})",
            deadline,
        )
    elif verdict is not None:
        yield verdict


RULE = Rule(
    id="PW-001",
    signal="red",
    title_zh="逾期未作出行政许可决定",
    title_en="decision overdue",
    basis=(law.SZ_XK_8_13, law.XKF_42, law.XKF_74_2),
    parameters=("decision_limit", "joint_decision_limit", "extension_limit", "joint_extension_limit", "end_of_day"),
    evaluate=evaluate,
    timed=True,
    triggers=DEADLINE_INPUTS,
    settled_by=CLOSING,
    remedy=lambda case: case.closure,
    remedy_zh="逾期后已办结(作出决定或终止办理)",
    remedy_en="the case was eventually decided or ended",
)
