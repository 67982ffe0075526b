"""PW-011 未依规定公开许可结果: a grant is not published within the configured period."""

from __future__ import annotations

from permitwatch.alerts import law
from permitwatch.alerts.clock import describe
from permitwatch.alerts.rules.base import CaseView, Finding, Rule, judge_deadline
from permitwatch.models import events as ev


def evaluate(view: CaseView):
    grant = view.case.grant_in_force
    if grant is None:
        return
    period = (view.item.publish_within if view.item else None) or view.settings.publication_period
    deadline = view.clock.after("publication_deadline", grant.time, period, "granted; XKF art. 40", grant.event_id)
    published = view.case.published
    verdict = judge_deadline(deadline, published.time if published else None, view.now)
    if verdict is True:
        yield Finding(
            f"publish_due:{deadline.last_day}",
            (*deadline.sources, *((published.event_id,) if published else ())),
            deadline.instant,
            f"准予许可决定未在 {describe(period)} 内 (至 {deadline.last_day}) 公开",
            f"grant not published within {describe(period)} (by {deadline.last_day})",
            deadline,
        )
    elif verdict is not None:
        yield verdict


RULE = Rule(
    id="PW-011",
    signal="red",
    title_zh="未依规定公开许可结果",
    title_en="result not published",
    basis=(law.SZ_XK_7_14, law.XKF_40),
    parameters=("publication_period",),
    evaluate=evaluate,
    timed=True,
    triggers=frozenset({ev.DecisionMade}),
    settled_by=frozenset({ev.ResultPublished}),
    remedy=lambda case: case.published,
    remedy_zh="逾期后已公开许可结果",
    remedy_en="the result was eventually published",
)
