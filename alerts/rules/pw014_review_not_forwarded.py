"""PW-014 初审机关逾期未报送: a preliminary review not forwarded to the upper agency within
20 working days of acceptance (`preliminary_review_limit`).

An item the catalog marks `preliminary_review` is watched from acceptance: the finding comes when
the limit passes. A `review.forwarded` shows a preliminary review whatever the catalog says
(EVENTS.md): one later than the limit is flagged when it arrives."""

from __future__ import annotations

from permitwatch.alerts import law
from permitwatch.alerts.rules.base import CLOSING, DEADLINE_INPUTS, CaseView, Finding, Rule, judge_deadline
from permitwatch.models import events as ev


def evaluate(view: CaseView):
    case = view.case
    forwarded = case.forwarded
    watched = view.item is not None and view.item.preliminary_review
    if not watched and forwarded is None:
        return
    anchor = view.anchor
    if anchor is None:
        if watched:
            yield from view.until_accepted()
        return
    deadline = view.clock.clock.deadline("forwarding_deadline", anchor.day, view.settings.preliminary_review_limit,
                                         f"{anchor.label}; XKF art. 43", anchor.evidence)
    if watched:
        ends = [t for t in (forwarded.time if forwarded else None, case.closed_at) if t is not None]
        verdict = judge_deadline(deadline, min(ends) if ends else None, view.now)
        if verdict is not True:
            if verdict is not None:
                yield verdict
            return
        detected_at = deadline.instant
    elif forwarded.time >= deadline.instant:
        detected_at = forwarded.time
    else:
        return
    limit = view.settings.preliminary_review_limit
    yield Finding(
        f"forward_due:{deadline.last_day}",
        (*deadline.sources, *((forwarded.event_id,) if forwarded else ())),
        detected_at,
        f"初审机关未在受理后 {limit.zh}内 (至 {deadline.last_day}) 报送初审意见和全部申请材料",
        f"preliminary review not forwarded within {limit.en} of acceptance (by {deadline.last_day})",
        deadline,
    )


RULE = Rule(
    id="PW-014",
    signal="red",
    title_zh="初审机关逾期未报送",
    title_en="preliminary review forwarded late",
    basis=(law.SZ_XK_8_19, law.XKF_43),
    parameters=("preliminary_review_limit",),
    evaluate=evaluate,
    timed=True,
    triggers=DEADLINE_INPUTS | {ev.ReviewForwarded},
    settled_by=CLOSING | {ev.ReviewForwarded},
    remedy=lambda case: case.forwarded,
    remedy_zh="逾期后已报送初审意见和材料",
    remedy_en="the preliminary review was eventually forwarded",
)
