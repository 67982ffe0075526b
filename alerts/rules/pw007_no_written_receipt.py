"""PW-007 受理或不予受理不出具书面凭证: acceptance or non-acceptance without a receipt number."""

from __future__ import annotations

from permitwatch.alerts import law
from permitwatch.alerts.rules.base import CaseView, Finding, Rule
from permitwatch.models import events as ev


def on_event(event: ev.ApplicationAccepted | ev.ApplicationRejected, view: CaseView):
    if event.data.receipt_no and event.data.receipt_no.strip():
        return
    what_zh, what_en = ("受理", "acceptance") if isinstance(event, ev.ApplicationAccepted) else ("不予受理", "non-acceptance")
    yield Finding(
        f"no_receipt:{event.id}",
        (event.id,),
        event.time,
        f"{what_zh}未出具加盖印章、注明日期的书面凭证 (无凭证编号)",
        f"{what_en} without a written receipt (no receipt number)",
    )


RULE = Rule(
    id="PW-007",
    signal="red",
    title_zh="未出具受理书面凭证",
    title_en="no written receipt",
    basis=(law.SZ_XK_7_10, law.GUOCUO_12_5, law.XKF_32_2),
    on_event=on_event,
    event_types=frozenset({ev.ApplicationAccepted, ev.ApplicationRejected}),
)
