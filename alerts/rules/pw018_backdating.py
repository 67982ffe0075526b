"""PW-018 疑似倒签: an event recorded much later than it claims to have happened, or one that
reaches the monitor late and, by its claimed time, undoes an alert already raised: the pattern of
a late decision entered with an earlier date to escape the red card.

When the event says when its system recorded it (`recordedtime`), that is the evidence, and only
that: an event recorded promptly that reaches the monitor late was delayed in transport (or is
history being loaded), not back-dated. Without it, arriving late is the evidence left."""

from __future__ import annotations

from permitwatch.alerts import law
from permitwatch.alerts.rules.base import CaseView, Finding, Rule
from permitwatch.models import events as ev


def on_event(event: ev.CloudEvent, view: CaseView):
    lag = view.ctx.backdating_lag
    recorded = event.recordedtime
    if recorded is not None and recorded - event.time > lag:
        hours = view.settings.backdating_lag_hours
        delay = (recorded - event.time).total_seconds() / 3600
        yield Finding(
            f"recorded_late:{event.id}",
            (event.id,),
            event.time,
            f"事件声称发生于 {event.time:%Y-%m-%d %H:%M}, 但 {delay:.0f} 小时后才录入系统 (阈值 {hours:g} 小时), 疑似倒签",
            f"event claims {event.time:%Y-%m-%d %H:%M} but was recorded {delay:.0f} h later (threshold {hours:g} h): "
            f"suspected back-dating",
        )
    elif recorded is None and view.retracted and view.now - event.time > lag:
        hours = view.settings.backdating_lag_hours
        delay = (view.now - event.time).total_seconds() / 3600
        undone = ", ".join(view.retracted)
        yield Finding(
            f"retroactive:{event.id}",
            (event.id,),
            event.time,
            f"事件声称发生于 {event.time:%Y-%m-%d %H:%M}, 在预警 ({undone}) 发出后 {delay:.0f} 小时才送达并撤销了预警, 疑似倒签",
            f"event claims {event.time:%Y-%m-%d %H:%M}, arrived {delay:.0f} h late after alert(s) {undone} and "
            f"undid them: suspected back-dating",
        )


RULE = Rule(
    id="PW-018",
    signal="data",
    title_zh="疑似倒签",
    title_en="suspected back-dating",
    basis=(law.DATA_INTEGRITY, law.GUOCUO_10_5),
    parameters=("backdating_lag_hours",),
    on_event=on_event,
    event_types=frozenset(ev.LICENSING_MODELS),
)
