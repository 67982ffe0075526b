"""PW-013 未按受理先后顺序准予许可: on a quantity-limited item allocated by order (not by tender,
auction or examination), a grant while an application accepted earlier was still waiting.

This rule compares cases, so it keeps state per item, not per case. Each case reports its
standing (`ItemCase`) whenever it changes; the item's state re-judges only the pairs of cases the
change can affect. Each (grant, overtaken application) pair is one finding. An overtaken
application that is later denied did not qualify (XKF art. 57 speaks of applications that all meet
the conditions), so its denial retracts the finding.
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
    alerts: dict[tuple[str, str], Alert] = field(default_factory=dict)
    """Active PW-013 alerts, by (granted case, overtaken case)."""


def _overtakes(granted: ItemCase, earlier: ItemCase) -> bool:
    """Did `granted` get its grant while `earlier`, accepted before it, still waited and qualified?"""
    return (
        earlier.accepted is not None
        and earlier.accepted.time < granted.accepted.time
        and (earlier.closed_at is None or earlier.closed_at > granted.grant.time)
        and earlier.outcome != "deny"
    )


def _finding(granted: ItemCase, overtaken_id: str, overtaken: ItemCase) -> Finding:
    return Finding(
        _fact(granted, overtaken_id),
        (granted.accepted.event_id, granted.grant.event_id, overtaken.accepted.event_id),
        granted.grant.time,
        f"数量限制事项未按受理先后顺序准予许可: 先受理的 {overtaken_id} 尚在等待",
        f"quantity-limited item granted out of acceptance order: {overtaken_id}, accepted earlier, was still "
        "waiting",
    )


def _fact(granted: ItemCase, overtaken_id: str) -> str:
    """One fact per overtaken application, so what an alert says does not depend on the order in
    which the cases' standings reached the item (on Kafka they come from different partitions)."""
    return f"out_of_order:{granted.grant.event_id}:{overtaken_id}"


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
        for pair in [pair for pair in state.alerts if case_id in pair]:
            del state.alerts[pair]
        return []
    state.cases[case_id] = update
    pairs = sorted({pair for other_id in state.cases if other_id != case_id
                    for pair in ((case_id, other_id), (other_id, case_id))})
    emitted = []
    for granted_id, earlier_id in pairs:
        granted, earlier = state.cases[granted_id], state.cases[earlier_id]
        holds = granted.grant is not None and granted.accepted is not None and _overtakes(granted, earlier)
        wanted = alert_id(granted_id, RULE.id, _fact(granted, earlier_id)) if holds else None
        active = state.alerts.get((granted_id, earlier_id))
        if active is not None and active.alert_id != wanted:
            del state.alerts[granted_id, earlier_id]
            emitted.append(retraction(active, (cause[0],), cause[1], Message(
                zh="撤回: 先受理的申请已在准予之前办结或被依法不予许可, 未违反受理顺序",
                en="retracted: the earlier application was settled before the grant or did not qualify",
            )))
            active = None
        if holds and active is None:
            alert = build_alert(RULE, _finding(granted, earlier_id, earlier), granted_id, state.item_code,
                                granted.department, granted.officers)
            state.alerts[granted_id, earlier_id] = alert
            emitted.append(alert)
    return emitted


RULE = Rule(
    id="PW-013",
    signal="red",
    title_zh="未按受理先后顺序准予许可",
    title_en="quantity-limited item granted out of order",
    basis=(law.SZ_XK_8_16, law.XKF_57),
)
