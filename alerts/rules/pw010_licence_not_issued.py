"""PW-010 未按期颁发许可证件: the licence is not issued within 10 working days of a grant
(`licence_issue_limit`)."""

from __future__ import annotations

from permitwatch.alerts import law
from permitwatch.alerts.rules.base import CaseView, Finding, Rule, judge_deadline
from permitwatch.models import events as ev


def evaluate(view: CaseView):
    grant = view.case.grant_in_force
    if grant is None or view.item is None or not view.item.licence_required:
        return
    limit = view.settings.licence_issue_limit
    deadline = view.clock.after("licence_deadline", grant.time, limit, "granted; XKF art. 44", grant.event_id)
    licence = view.case.licence
    verdict = judge_deadline(deadline, licence.time if licence else None, view.now)
    if verdict is True:
        yield Finding(
            f"licence_due:{deadline.last_day}",
            (*deadline.sources, *((licence.event_id,) if licence else ())),
            deadline.instant,
            f"准予许可后 {limit.zh}内 (至 {deadline.last_day}) 未颁发、送达许可证件",
            f"licence not issued within {limit.en} of the grant (by {deadline.last_day})",
            deadline,
        )
    elif verdict is not None:
        yield verdict


RULE = Rule(
    id="PW-010",
    signal="red",
    title_zh="未按期颁发许可证件",
    title_en="licence not issued in time",
    basis=(law.SZ_XK_7_13, law.XKF_44),
    parameters=("licence_issue_limit",),
    evaluate=evaluate,
    timed=True,
    triggers=frozenset({ev.DecisionMade}),
    settled_by=frozenset({ev.LicenceIssued}),
    remedy=lambda case: case.licence,
    remedy_zh="逾期后已颁发许可证件",
    remedy_en="the licence was eventually issued",
)
