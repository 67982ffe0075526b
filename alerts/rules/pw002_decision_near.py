"""PW-002 临近办理时限预警 / 超过承诺时限黄牌: a limit is near without a decision (预警: a few working
days before the promised limit and again before the statutory one), or the agency's promised limit
(承诺时限) has passed without a decision (黄牌). Warning before each limit on its own means a promise
learnt late never withdraws a warning already given."""

from __future__ import annotations

from permitwatch.alerts import law
from permitwatch.alerts.clock import Deadline
from permitwatch.alerts.rules.base import CLOSING, DEADLINE_INPUTS, CaseView, Due, Finding, Rule, judge_deadline


def evaluate(view: CaseView):
    statutory, promised = view.decision_deadline, view.promised_deadline
    if statutory is None:
        if view.anchor is None:
            yield from view.until_accepted()
        return
    if promised is not None and promised.instant >= statutory.instant:
        promised = None  # a "promise" no shorter than the law adds nothing to the red card
    closed = view.case.closed_at
    if promised is not None:
        yield from _warning(view, promised, closed)
    yield from _warning(view, statutory, closed)
    if promised is not None:
        verdict = judge_deadline(promised, closed, view.now)
        if verdict is True:
            yield Finding(
                f"promised_due:{promised.last_day}",
                promised.sources,
                promised.instant,
                f"超过承诺办结时限 ({promised.last_day}) 未作出决定",
                f"promised limit exceeded: no decision by {promised.last_day}",
                promised,
                "yellow",
            )
        elif verdict is not None:
            yield verdict


def _warning(view: CaseView, target: Deadline, closed):
    item = view.item
    remaining = item.warning_working_days if item and item.warning_working_days is not None else None
    if remaining is None:
        remaining = view.settings.warning_working_days
    anchor = view.anchor
    if remaining == 0:
        return
    day = view.clock.warning_day(target, remaining)
    if day < anchor.day:
        return  # the limit is shorter than the warning window: nothing sensible to warn about
    instant = view.clock.clock.end_of(day)
    if closed is not None and closed < instant:
        return
    if view.now < instant and closed is None:
        yield Due(instant)
        return
    kind_zh, kind_en = ("承诺时限", "promised") if target.name == "promised_deadline" else ("法定时限", "statutory")
    yield Finding(
        f"warning:{target.name}:{target.last_day}",
        target.sources,
        instant,
        f"距{kind_zh} ({target.last_day}) 仅剩 {remaining} 个工作日, 尚未作出决定",
        f"{remaining} working days left before the {kind_en} limit ({target.last_day}); no decision yet",
        target,
        "warning",
    )


RULE = Rule(
    id="PW-002",
    signal="warning",
    title_zh="临近办理时限预警 / 超过承诺时限",
    title_en="decision deadline near / promised limit exceeded",
    basis=(law.XKF_42,),
    parameters=("warning_working_days",),
    evaluate=evaluate,
    timed=True,
    triggers=DEADLINE_INPUTS,
    settled_by=CLOSING,
)
