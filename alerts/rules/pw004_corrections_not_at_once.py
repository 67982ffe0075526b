"""PW-004 不一次告知补正: a later correction notice asks for a material that no earlier notice listed
and that the applicant did not newly supply after the first notice.

Allowed (LEGAL-RULES.md): asking again about a listed material that is still deficient, or about a
material the applicant supplied after the first notice. A request after acceptance (during review)
is judged the same way against every notice before it; asking then for what is already in the
file is PW-005 besides."""

from __future__ import annotations

from permitwatch.alerts import law
from permitwatch.alerts.rules.base import CaseView, Finding, Rule
from permitwatch.models import events as ev


def evaluate(view: CaseView):
    notices = view.case.notices
    if len(notices) < 2:
        return
    first = notices[0]
    listed = set(first.materials)
    for number, notice in enumerate(notices[1:], start=2):
        newly_supplied = set()
        for receipt in view.case.receipts:
            if not receipt.first and first.time < receipt.time < notice.time:
                newly_supplied |= receipt.materials
        unlisted = sorted(notice.materials - listed - newly_supplied)
        if unlisted:
            codes = ", ".join(unlisted)
            yield Finding(
                f"not_at_once:{notice.event_id}",
                (first.event_id, notice.event_id),
                notice.time,
                f"第 {number} 次补正告知要求首次告知未列明的材料 ({codes}), 未一次告知需要补正的全部内容",
                f"correction notice no. {number} asks for material(s) the first notice did not list ({codes}): "
                f"corrections not listed at once",
            )
        listed |= notice.materials


RULE = Rule(
    id="PW-004",
    signal="red",
    title_zh="未一次告知补正内容",
    title_en="corrections not listed at once",
    basis=(law.SZ_XK_7_4, law.XKF_32_4),
    evaluate=evaluate,
    triggers=frozenset({ev.CorrectionRequested, ev.CorrectionSupplied, ev.ApplicationAccepted}),
)
