"""PW-017 违规中止计时: the clock paused for a reason outside XKF art. 45, or without telling the
applicant in writing how long it needs. Such a pause does not stop the clock (the deadlines module)."""

from __future__ import annotations

from permitwatch.alerts import law
from permitwatch.alerts.rules.base import CaseView, Finding, Rule
from permitwatch.models import events as ev
from permitwatch.models.events import STATUTORY_PAUSE_KINDS


def on_event(event: ev.ProcedureStarted, view: CaseView):
    kind = event.data.kind
    if kind == "extension":
        return
    if kind not in STATUTORY_PAUSE_KINDS:
        zh = f"以法定情形以外的程序 ({kind}) 中止计时, 无法律依据"
        en = f"clock paused for {kind}, which XKF art. 45 does not list"
    elif not event.data.notified:
        zh = f"{kind} 所需时间未书面告知申请人"
        en = f"time needed for {kind} not notified to the applicant in writing"
    else:
        return
    yield Finding(f"pause:{event.id}", (event.id,), event.time, f"违规中止计时: {zh}", f"irregular pause: {en}")


RULE = Rule(
    id="PW-017",
    signal="red",
    title_zh="违规中止计时",
    title_en="irregular pause",
    basis=(law.XKF_45, law.SZ_XK_8_11),
    on_event=on_event,
    event_types=frozenset({ev.ProcedureStarted}),
)
