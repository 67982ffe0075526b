"""PW-013 未按受理先后顺序准予许可: on a quantity-limited item allocated by order (not by tender,
auction or examination), a grant while an application accepted earlier was still waiting.

This rule compares cases, so it keeps state per item, not per case. Each case reports its
standing (`ItemCase`) whenever it changes; the item's state re-judges only the grants the change
can affect. An overtaken application that is later denied did not qualify (XKF art. 57 speaks of
applications that all meet the conditions), so its denial retracts the finding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from alerts import law
from alerts.case import CaseState, Fact
from alerts.emit import alert_id, build_alert, retraction
from alerts.rules.base import Finding, Rule
from models.alerts import Alert, Message, Officers
from models.catalog import CatalogEntry


class ItemCase(NamedTuple):
    """What the item's state needs to know about one case."""

    accepted: Fact | None
    closed_at: datetime | None
    outcome: str | None
    grant: Fact | None
    department: str | None
    officers: Officers


def item_case(case: CaseState, officers: Officers) -> ItemCase:
    outcome = case.decision.outcome if case.decision else ("withdrawn" if case.withdrawn else None)
    grant = case.grant
    return ItemCase(
        case.accepted, case.closed_at, outcome, Fact(grant.time, grant.event_id) if grant else None,
        case.department, officers,
    )


def tracks(item: CatalogEntry | None) -> bool:
    return bool(item and item.quantity_limited and item.allocation == "order")


@dataclass(slots=True)
class ItemState:
    item_code: str
    cases: dict[str, ItemCase] = field(default_factory=dict)
    alerts: dict[str, Alert] = field(default_factory=dict)
    """Active PW-013 alerts, by alert id."""


def _overtakes(granted: ItemCase, earlier: ItemCase) -> bool:
    """Did `granted` get its grant while `earlier`, accepted before it, still waited and qualified?"""
    return (
        earlier.accepted is not None
        and earlier.accepted.time < granted.accepted.time
        and (earlier.closed_at is None or earlier.closed_at > granted.grant.time)
        and earlier.outcome != "deny"
    )


def _finding(granted: ItemCase, overtaken: list[tuple[str, ItemCase]]) -> Finding:
    ids = ", ".join(sorted(cid for cid, _ in overtaken))
    return Finding(
        f"out_of_order:{granted.grant.event_id}",
        (granted.accepted.event_id, granted.grant.event_id, *sorted(c.accepted.event_id for _, c in overtaken)),
        granted.grant.time,
        f"数量限制事项未按受理先后顺序准予许可: 先受理的 {len(overtaken)} 件 ({ids}) 尚在等待",
        f"quantity-limited item granted out of acceptance order: {len(overtaken)} earlier application(s) "
        f"({ids}) still waiting",
    )


def apply_item_update(
    state: ItemState, case_id: str, update: ItemCase | None, cause: tuple[str, datetime]
) -> list[Alert]:
    """Record a case's new standing (None: the case is gone) and return the alerts that changes."""
    old = state.cases.get(case_id)
    if update == old:
        return []
    if update is None:
        # A case leaves the item's memory long after it closed; forgetting it proves nothing.
        del state.cases[case_id]
        return []
    state.cases[case_id] = update
    affected = {case_id} if update.grant else set()
    for other_id, other in state.cases.items():
        if other_id != case_id and other.grant and other.accepted:
            before = old is not None and _overtakes(other, old)
            if before != _overtakes(other, update):
                affected.add(other_id)
    emitted = []
    for granted_id in sorted(affected):
        granted = state.cases[granted_id]
        if granted.accepted is None or granted.grant is None:
            continue
        overtaken = [(cid, c) for cid, c in state.cases.items() if cid != granted_id and _overtakes(granted, c)]
        ident = alert_id(granted_id, RULE.id, f"out_of_order:{granted.grant.event_id}")
        active = state.alerts.get(ident)
        if overtaken and active is None:
            alert = build_alert(RULE, _finding(granted, overtaken), granted_id, state.item_code,
                                granted.department, granted.officers)
            state.alerts[ident] = alert
            emitted.append(alert)
        elif not overtaken and active is not None:
            del state.alerts[ident]
            emitted.append(retraction(active, (cause[0],), cause[1], Message(
                zh="撤回: 先受理的申请已在准予之前办结或被依法不予许可, 未违反受理顺序",
                en="retracted: the earlier applications were settled before the grant or did not qualify",
            )))
    return emitted


RULE = Rule(
    id="PW-013",
    signal="red",
    title_zh="未按受理先后顺序准予许可",
    title_en="quantity-limited item granted out of order",
    basis=(law.SZ_XK_8_16, law.XKF_57),
)
