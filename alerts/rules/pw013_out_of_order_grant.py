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
from typing import NamedTuple, Protocol

from permitwatch.alerts import law
from permitwatch.alerts.case import CaseState, Fact
from permitwatch.alerts.emit import alert_id, build_alert, retraction
from permitwatch.alerts.rules.base import Finding, Rule
from permitwatch.models.alerts import Alert, Message, Officers
from permitwatch.models.catalog import CatalogEntry


class ItemCase(NamedTuple):
    """What the item's state needs to know about one case."""

    accepted: Fact | None
    closed_at: datetime | None
    outcome: str | None
    grant: Fact | None
    department: str | None
    officers: Officers
    decided: Fact | None = None
    """The first decision, which settles `outcome`."""


def item_case(case: CaseState, officers: Officers) -> ItemCase:
    decision = case.decision
    outcome = decision.outcome if decision else ("withdrawn" if case.withdrawn else None)
    grant = case.grant
    return ItemCase(
        case.accepted, case.closed_at, outcome, Fact(grant.time, grant.event_id) if grant else None,
        case.department, officers, Fact(decision.time, decision.event_id) if decision else None,
    )


def tracks(item: CatalogEntry | None) -> bool:
    return bool(item and item.granted_in_order)


@dataclass(slots=True)
class ItemState:
    item_code: str
    cases: dict[str, ItemCase] = field(default_factory=dict)
    alerts: dict[tuple[str, str], Alert] = field(default_factory=dict)
    """The last PW-013 record of each (granted case, overtaken case), active or retracted."""
    pending: set[tuple[str, str]] = field(default_factory=set)
    """Pairs that look like a finding, waiting until the overtaken case is known as of the grant."""
    left: dict[str, datetime] = field(default_factory=dict)
    """Cases their partition has forgotten, and when; kept until no grant still unread can pair
    with them."""


class Progress(Protocol):
    """How far the cases' inputs have been read. In one process everything is read in time order,
    so the item's knowledge is always complete (`COMPLETE`). On Kafka the cases of one item sit on
    different partitions, which may be read far apart (a backlog, a failover): judging a pair
    before the overtaken case is read up to the grant would raise red cards its own decision,
    still unread, disproves; forgetting a case before every partition is read past it would miss
    grants that overtook it."""

    def settled(self, case_id: str, at: datetime) -> bool:
        """Is what the item knows of the case true as of `at`?"""
        ...

    def passed(self, at: datetime) -> bool:
        """Has every partition been read beyond `at`?"""
        ...


class _Complete:
    def settled(self, case_id: str, at: datetime) -> bool:
        return True

    def passed(self, at: datetime) -> bool:
        return True


COMPLETE: Progress = _Complete()


def _waited(granted: ItemCase, earlier: ItemCase) -> bool:
    """Did `granted` get its grant while `earlier`, accepted before it, was still waiting?"""
    return (
        granted.grant is not None
        and granted.accepted is not None
        and earlier.accepted is not None
        and earlier.accepted.time < granted.accepted.time
        and (earlier.closed_at is None or earlier.closed_at > granted.grant.time)
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
    state: ItemState, case_id: str, update: ItemCase | None, cause: tuple[str, datetime],
    progress: Progress = COMPLETE,
) -> list[Alert]:
    """Record a case's new standing (None: the case is gone) and return the alerts that changes."""
    old = state.cases.get(case_id)
    if update == old:
        return []
    if update is None:
        # A case leaves the item's memory long after it closed; forgetting it proves nothing.
        if case_id in state.cases:
            state.left[case_id] = cause[1]
        return recheck_pending(state, progress)
    state.cases[case_id] = update
    state.left.pop(case_id, None)
    emitted = _judge(state, _pairs_of(state, case_id), cause, progress)
    _forget(state, progress)
    return emitted


def _pairs_of(state: ItemState, case_id: str) -> list[tuple[str, str]]:
    """The pairs (granted, earlier) of `case_id` with the item's other cases that judging can
    change, in order: those whose granted side has a grant, or that hold an alert or wait. Any
    other pair was not waited for and holds nothing, and judging it does nothing; judging every
    pair at every standing made a crowded item quadratic (2,300 applications waiting on one
    item: 23 s)."""
    mine = state.cases[case_id].grant is not None
    alerts, pending = state.alerts, state.pending
    pairs = []
    for other_id, other in state.cases.items():
        if other_id == case_id:
            continue
        pair = (case_id, other_id)
        if mine or pair in alerts or pair in pending:
            pairs.append(pair)
        pair = (other_id, case_id)
        if other.grant is not None or pair in alerts or pair in pending:
            pairs.append(pair)
    return sorted(pairs)


def recheck_pending(state: ItemState, progress: Progress) -> list[Alert]:
    """Judge the waiting pairs again and forget what may be forgotten (more has been read)."""
    pairs = sorted(state.pending)
    state.pending = set()
    emitted = _judge(state, pairs, None, progress)
    _forget(state, progress)
    return emitted


def _forget(state: ItemState, progress: Progress) -> None:
    for case_id, at in list(state.left.items()):
        if progress.passed(at) and not any(case_id in pair for pair in state.pending):
            del state.left[case_id]
            del state.cases[case_id]
            for pair in [pair for pair in state.alerts if case_id in pair]:
                del state.alerts[pair]


_SETTLED_IN_ORDER = Message(
    zh="撤回: 先受理的申请已在准予之前办结或被依法不予许可, 未违反受理顺序",
    en="retracted: the earlier application was settled before the grant or did not qualify",
)


def _judge(state: ItemState, pairs: list[tuple[str, str]], cause: tuple[str, datetime] | None,
           progress: Progress) -> list[Alert]:
    """Each pair as a monitor reading the events in time order would have judged it: a finding
    at the grant while the earlier application waited, retracted when that application was
    denied (it did not qualify). When the denial is already known at judging time (inputs read
    out of time order), both records are emitted at once, so the output depends on the events'
    times only, not on the order they were read in."""
    emitted = []
    for pair in pairs:
        granted_id, earlier_id = pair
        granted, earlier = state.cases[granted_id], state.cases[earlier_id]
        waited = _waited(granted, earlier)
        qualified = waited and earlier.outcome != "deny"
        wanted = alert_id(granted_id, RULE.id, _fact(granted, earlier_id)) if waited else None
        last = state.alerts.get(pair)
        state.pending.discard(pair)
        if last is not None and last.status == "active" and (not qualified or last.alert_id != wanted):
            # Only a new standing disproves an alert (a waiting pair has none): `cause` is set.
            last = state.alerts[pair] = retraction(last, (cause[0],), cause[1], _SETTLED_IN_ORDER)
            emitted.append(last)
        if not waited or (last is not None and last.alert_id == wanted and (last.status == "active" or not qualified)):
            continue
        if not progress.settled(earlier_id, granted.grant.time):
            state.pending.add(pair)
            continue
        alert = state.alerts[pair] = build_alert(RULE, _finding(granted, earlier_id, earlier), granted_id,
                                                 state.item_code, granted.department, granted.officers)
        emitted.append(alert)
        if not qualified:
            denied = earlier.decided
            state.alerts[pair] = retraction(alert, (denied.event_id,), denied.time, _SETTLED_IN_ORDER)
            emitted.append(state.alerts[pair])
    return emitted


RULE = Rule(
    id="PW-013",
    signal="red",
    title_zh="未按受理先后顺序准予许可",
    title_en="quantity-limited item granted out of order",
    basis=(law.SZ_XK_8_16, law.XKF_57),
)
