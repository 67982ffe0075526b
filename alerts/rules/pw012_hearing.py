"""PW-012 应听证而未听证: a decision without the required hearing; a hearing notified less than 7
days ahead; a requested hearing not held within 20 working days."""

from __future__ import annotations

from permitwatch.alerts import law
from permitwatch.alerts.clock import local_date
from permitwatch.alerts.rules.base import CaseView, Finding, Rule, judge_deadline
from permitwatch.models import events as ev


def evaluate(view: CaseView):
    case = view.case
    requested, held, decision = case.hearing_requested, case.hearing_held, case.decision
    if decision is not None:
        required = bool(view.item and view.item.hearing_required)
        asked = requested is not None and requested.time <= decision.time  # procedure order at a tie
        if (required or asked) and (held is None or held.time > decision.time):
            why_zh, why_en = ("事项依法应当听证", "the item requires a hearing") if required else \
                ("申请人已要求听证", "a hearing was requested")
            yield Finding(
                f"no_hearing:{decision.event_id}",
                (*((requested.event_id,) if asked else ()), decision.event_id),
                decision.time,
                f"{why_zh}, 未举行听证即作出决定",
                f"{why_en}, but the decision was made without one",
            )
    if requested is not None:
        limit = view.settings.hearing_hold_limit
        deadline = view.clock.after("hearing_deadline", requested.time, limit, "hearing requested; XKF art. 47",
                                    requested.event_id)
        ends = [t for t in (held.time if held else None, case.closed_at) if t is not None]
        verdict = judge_deadline(deadline, min(ends) if ends else None, view.now)
        if verdict is True:
            yield Finding(
                f"hearing_due:{deadline.last_day}",
                deadline.sources,
                deadline.instant,
                f"申请听证后 {limit.zh}内 (至 {deadline.last_day}) 未组织听证",
                f"hearing not held within {limit.en} of the request (by {deadline.last_day})",
                deadline,
            )
        elif verdict is not None:
            yield verdict


def on_event(event: ev.HearingNotified, view: CaseView):
    notice = view.settings.hearing_notice_days.value
    lead = (local_date(event.data.scheduled_for) - local_date(event.time)).days
    if lead < notice:
        yield Finding(
            f"short_notice:{event.id}",
            (event.id,),
            event.time,
            f"听证通知仅提前 {lead} 日 (应于举行听证的 {notice} 日前通知)",
            f"hearing notified only {lead} day(s) ahead (at least {notice} required)",
        )


RULE = Rule(
    id="PW-012",
    signal="red",
    title_zh="应听证而未听证或听证程序违法",
    title_en="hearing not held or not properly notified",
    basis=(law.SZ_XK_7_6, law.XKF_46_48),
    parameters=("hearing_hold_limit", "hearing_notice_days"),
    evaluate=evaluate,
    timed=True,
    triggers=frozenset({ev.HearingRequested, ev.DecisionMade}),
    settled_by=frozenset({ev.HearingHeld, ev.ApplicationWithdrawn, ev.ApplicationRejected}),
    on_event=on_event,
    event_types=frozenset({ev.HearingNotified}),
    remedy=lambda case: case.hearing_held,
    remedy_zh="逾期后已举行听证",
    remedy_en="the hearing was eventually held",
)
