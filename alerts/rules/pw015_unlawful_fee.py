"""PW-015 违法收费: a fee on an item with no fee basis, a fee not on the published list or above
its standard, or a deposit (抵押金、保证金)."""

from __future__ import annotations

from permitwatch.alerts import law
from permitwatch.alerts.case import Fee
from permitwatch.alerts.rules.base import CaseView, Finding, Rule
from permitwatch.models import events as ev
from permitwatch.models.catalog import FeeStandard


def evaluate(view: CaseView):
    if view.item is None:
        return  # the fee basis is in the catalog; without the item there is nothing to judge
    for fee in view.case.fees:
        finding = _judge(fee, view.item.fee)
        if finding is not None:
            yield finding


def _judge(fee: Fee, standard: FeeStandard | None) -> Finding | None:
    problems_zh, problems_en = [], []
    if fee.deposit:
        problems_zh.append("收取抵押金、保证金")
        problems_en.append("a deposit was taken")
    if standard is None:
        problems_zh.append("该事项无收费依据")
        problems_en.append("the item has no fee basis")
    else:
        if fee.fee_code and fee.fee_code != standard.fee_code:
            problems_zh.append(f"收费项目 {fee.fee_code} 不在公布的法定项目内")
            problems_en.append(f"fee {fee.fee_code} is not the published fee item")
        if fee.amount > standard.max_amount:
            problems_zh.append(f"收费 {fee.amount} 元超过标准 {standard.max_amount} 元")
            problems_en.append(f"amount {fee.amount} yuan exceeds the standard {standard.max_amount} yuan")
    if not problems_zh:
        return None
    return Finding(
        f"fee:{fee.event_id}",
        (fee.event_id,),
        fee.time,
        f"违法收费: {'; '.join(problems_zh)}",
        f"unlawful fee: {'; '.join(problems_en)}",
    )


RULE = Rule(
    id="PW-015",
    signal="red",
    title_zh="违法收费",
    title_en="unlawful fee",
    basis=(law.SZ_XK_9_1, law.XKF_58_59),
    evaluate=evaluate,
    triggers=frozenset({ev.FeeCharged, ev.ApplicationSubmitted}),
)
