"""Every deadline of one case at a moment, for people looking at the case (the console's timeline).
No judgement: just what is due, when, and why."""

from __future__ import annotations

from permitwatch.alerts.case import CaseState
from permitwatch.alerts.clock import Deadline
from permitwatch.alerts.rules.base import CaseView, Context


def case_deadlines(case: CaseState, ctx: Context) -> list[Deadline]:
    """The deadlines the case has at `ctx.now`, earliest first."""
    view = CaseView(case, ctx)
    settings = ctx.settings
    found: list[Deadline] = [window.deadline for window in view.response_windows]
    for deadline in (view.decision_deadline, view.promised_deadline):
        if deadline is not None:
            found.append(deadline)
    grant = case.grant
    if grant is not None:
        item = view.item
        if item is None or item.licence_required:
            found.append(view.clock.after("licence_deadline", grant.time, settings.licence_issue_limit,
                                          "granted; XKF art. 44", grant.event_id))
        period = (item.publish_within if item else None) or settings.publication_period
        found.append(view.clock.after("publication_deadline", grant.time, period, "granted; XKF art. 40",
                                      grant.event_id))
    if case.hearing_requested is not None:
        found.append(view.clock.after("hearing_deadline", case.hearing_requested.time, settings.hearing_hold_limit,
                                      "hearing requested; XKF art. 47", case.hearing_requested.event_id))
    anchor = view.anchor
    if anchor is not None and view.item is not None and view.item.preliminary_review:
        found.append(ctx.clock.deadline("forwarding_deadline", anchor.day, settings.preliminary_review_limit,
                                        f"{anchor.label}; XKF art. 43", anchor.evidence))
    return sorted(found, key=lambda d: (d.instant, d.name))
