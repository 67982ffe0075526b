"""PW-006 要求提供与申请事项无关的材料: a material not on the item's catalog list is demanded."""

from __future__ import annotations

from permitwatch.alerts import law
from permitwatch.alerts.rules.base import CaseView, Finding, Rule
from permitwatch.models import events as ev


def evaluate(view: CaseView):
    if view.item is None or not view.item.materials:
        return  # without the item's list there is nothing to compare with
    listed = view.item.material_codes
    for notice in view.case.notices:
        unrelated = sorted(notice.materials - listed)
        if not unrelated:
            continue
        codes = ", ".join(unrelated)
        yield Finding(
            f"unrelated:{notice.event_id}",
            (notice.event_id,),
            notice.time,
            f"要求提供事项目录以外的材料 ({codes}), 与申请事项无关",
            f"asked for material(s) not on the item's catalog list ({codes})",
        )


RULE = Rule(
    id="PW-006",
    signal="red",
    title_zh="要求提供与申请事项无关的材料",
    title_en="material unrelated to the item demanded",
    basis=(law.SZ_XK_7_7,),
    evaluate=evaluate,
    triggers=frozenset({ev.CorrectionRequested, ev.ApplicationSubmitted}),
)
