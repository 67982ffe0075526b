"""PW-005 要求重复提供申请材料: after acceptance, a request for a material already in the file; or,
after a preliminary review was forwarded, the upper agency asking for what the lower one forwarded."""

from __future__ import annotations

from permitwatch.alerts import law
from permitwatch.alerts.rules.base import CaseView, Finding, Rule
from permitwatch.models import events as ev


def evaluate(view: CaseView):
    case = view.case
    if case.accepted is None:
        return
    accepted_at = case.accepted.time
    forwarded_at = case.forwarded.time if case.forwarded else None
    for notice in case.notices:
        if notice.time < accepted_at:  # one at the acceptance's instant comes after it (procedure order)
            continue
        in_file = case.materials_in_file(notice.time)
        repeated = sorted(notice.materials & in_file)
        if not repeated:
            continue
        codes = ", ".join(repeated)
        suppliers = tuple(r.event_id for r in case.receipts if r.time < notice.time and r.materials & notice.materials)
        if forwarded_at is not None and forwarded_at < notice.time:
            basis = (law.SZ_XK_7_7, law.XKF_35)
            zh = f"初审机关已报送全部申请材料后, 上级机关再次要求申请人提供 ({codes})"
            en = f"after the preliminary review was forwarded, the applicant was asked again for ({codes})"
            evidence = (*suppliers, case.forwarded.event_id, notice.event_id)
        else:
            basis = (law.SZ_XK_7_7, law.GUOCUO_12_12)
            zh = f"已受理后要求申请人重复提供已提交的材料 ({codes})"
            en = f"after acceptance, the applicant was asked again for material(s) already in the file ({codes})"
            evidence = (*suppliers, case.accepted.event_id, notice.event_id)
        yield Finding(f"demanded_twice:{notice.event_id}", evidence, notice.time, zh, en, basis=basis)


RULE = Rule(
    id="PW-005",
    signal="red",
    title_zh="要求重复提供申请材料",
    title_en="same material demanded twice",
    basis=(law.SZ_XK_7_7, law.GUOCUO_12_12, law.XKF_35),
    evaluate=evaluate,
    triggers=frozenset(
        {ev.CorrectionRequested, ev.CorrectionSupplied, ev.ApplicationAccepted, ev.ReviewForwarded, ev.ApplicationSubmitted}
    ),
)
