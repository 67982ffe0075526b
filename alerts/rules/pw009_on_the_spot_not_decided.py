"""PW-009 应当场作出而未当场作出决定: an on-the-spot item (即办件) accepted with complete materials
but not decided the same day."""

from __future__ import annotations

from permitwatch.alerts import law
from permitwatch.alerts.clock import local_date
from permitwatch.alerts.rules.base import CLOSING, CaseView, Finding, Rule, judge_deadline
from permitwatch.models import events as ev


def evaluate(view: CaseView):
    accepted = view.case.accepted
    if view.item is None or not view.item.on_the_spot or accepted is None:
        return
    day = local_date(accepted.time)
    deadline = view.clock.clock.on_day("on_the_spot_deadline", day, "on-the-spot item accepted", (accepted.event_id,))
    verdict = judge_deadline(deadline, view.case.closed_at, view.now)
    if verdict is True:
        yield Finding(
            f"on_the_spot:{day}",
            deadline.sources,
            deadline.instant,
            f"即办件于 {day} 受理, 材料齐全, 未当场作出决定",
            f"on-the-spot item accepted on {day} with complete materials but not decided that day",
            deadline,
        )
    elif verdict is not None:
        yield verdict


RULE = Rule(
    id="PW-009",
    signal="red",
    title_zh="应当场作出而未当场作出决定",
    title_en="on-the-spot item not decided the same day",
    basis=(law.SZ_XK_7_12, law.XKF_34),
    parameters=("end_of_day",),
    evaluate=evaluate,
    timed=True,
    triggers=frozenset({ev.ApplicationAccepted}),
    settled_by=CLOSING,
    remedy=lambda case: case.closure,
    remedy_zh="次日及以后作出决定",
    remedy_en="the decision was eventually made",
)
