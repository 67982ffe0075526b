"""PW-008 不说明理由或不告知救济权利: non-acceptance or denial without written reasons, or without
telling the applicant of the rights to administrative review and litigation."""

from __future__ import annotations

from permitwatch.alerts import law
from permitwatch.alerts.rules.base import CaseView, Finding, Rule
from permitwatch.models import events as ev


def on_event(event: ev.ApplicationRejected | ev.DecisionMade, view: CaseView):
    if isinstance(event, ev.DecisionMade) and event.data.outcome != "deny":
        return
    missing_zh, missing_en = [], []
    if not (event.data.reasons and event.data.reasons.strip()):
        missing_zh.append("未书面说明理由")
        missing_en.append("no written reasons")
    if not event.data.remedies_notified:
        missing_zh.append("未告知申请行政复议或提起行政诉讼的权利")
        missing_en.append("review and litigation rights not notified")
    if not missing_zh:
        return
    what_zh, what_en = ("不予受理", "non-acceptance") if isinstance(event, ev.ApplicationRejected) else ("不予许可决定", "denial")
    yield Finding(
        f"no_reasons:{event.id}",
        (event.id,),
        event.time,
        f"{what_zh}: {'; '.join(missing_zh)}",
        f"{what_en}: {'; '.join(missing_en)}",
    )


RULE = Rule(
    id="PW-008",
    signal="red",
    title_zh="未说明理由或未告知救济权利",
    title_en="no written reasons or remedies",
    basis=(law.SZ_XK_7_5, law.XKF_38),
    on_event=on_event,
    event_types=frozenset({ev.ApplicationRejected, ev.DecisionMade}),
)
