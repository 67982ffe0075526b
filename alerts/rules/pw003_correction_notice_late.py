"""PW-003 逾期告知补正: no correction notice (nor acceptance or refusal) within 5 working days of
receiving materials. The application is then deemed accepted on the receipt day, which moves the
decision clock (the deadlines module does that; this rule flags the failure to tell)."""

from __future__ import annotations

from permitwatch.alerts import law
from permitwatch.alerts.case import CaseState, Fact
from permitwatch.alerts.clock import local_date
from permitwatch.alerts.rules.base import CLOSING, CaseView, Due, Finding, Rule
from permitwatch.models import events as ev


def evaluate(view: CaseView):
    for window in view.response_windows:
        deadline = window.deadline
        if not window.missed(view.now):
            if window.answered_at is None:
                yield Due(deadline.instant)
            continue
        receipt_day = local_date(window.receipt.time)
        limit = view.settings.correction_notice_limit
        late = (window.answered_by,) if window.answered_by else ()
        yield Finding(
            f"answer_due:{window.receipt.event_id}",
            (*deadline.sources, *late),
            deadline.instant,
            f"收到申请材料 ({receipt_day}) 后 {limit.zh}内 (至 {deadline.last_day}) 未一次告知补正或受理, "
            f"依法自收到材料之日起视为受理",
            f"no correction notice or acceptance within {limit.en} of receiving materials on "
            f"{receipt_day} (by {deadline.last_day}); deemed accepted on {receipt_day}",
            deadline,
        )


def _answered(case: CaseState) -> Fact | None:
    answers = [Fact(n.time, n.event_id) for n in case.notices[:1]]
    answers += [f for f in (case.accepted, case.rejected) if f is not None]
    return min(answers, default=None)


RULE = Rule(
    id="PW-003",
    signal="red",
    title_zh="逾期告知补正",
    title_en="correction notice late",
    basis=(law.SZ_XK_7_3, law.XKF_32_4),
    parameters=("correction_notice_limit", "end_of_day"),
    evaluate=evaluate,
    timed=True,
    triggers=frozenset({ev.ApplicationSubmitted, ev.CorrectionSupplied}),
    settled_by=CLOSING | {ev.CorrectionRequested, ev.ApplicationAccepted},
    remedy=_answered,
    remedy_zh="逾期后已告知补正或受理",
    remedy_en="a correction notice or acceptance eventually followed",
)
