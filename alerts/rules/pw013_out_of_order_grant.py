"""PW-013 未按受理先后顺序准予许可: on a quantity-limited item allocated by order (not by tender,
auction or examination), a grant while an application accepted earlier was still waiting.

This rule compares cases, so it keeps state per item, not per case. Each case reports its
standing (`ItemCase`) whenever it changes; the item's state re-judges only the pairs of cases the
change can affect, which its `ItemIndex` finds without going through the item's other cases.
Each (grant, overtaken application) pair is one finding. An overtaken application that is later
denied did not qualify (XKF art. 57 speaks of applications that all meet the conditions), so its
denial retracts the finding.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from operator import itemgetter
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


_FIRST = itemgetter(0)


class ItemIndex:
    """Where an item's cases stand in the orders PW-013 compares them by, and which of its pairs
    hold a record or wait: what judging one case's new standing needs, so that it costs about what
    it finds rather than the item's size (2,300 applications granted in order of acceptance took
    12 s to replay, three quarters of it pairing each standing with every case of the item).

    Derived from an `ItemState` and kept beside it (`CityBook`), never stored. `held` may still
    name pairs the state no longer holds (they are checked where used); it never misses one."""

    def __init__(self, state: ItemState):
        self.open: list[tuple[datetime, str]] = []
        """(acceptance, case) of the accepted cases not closed, by acceptance."""
        self.closed: list[tuple[datetime, str]] = []
        """(closing, case) of the accepted cases closed, by closing."""
        self.granted: list[tuple[datetime, str]] = []
        """(acceptance, case) of the accepted cases granted, by acceptance."""
        self.held: dict[str, set[tuple[str, str]]] = {}
        """Per case, the pairs naming it that hold a record or wait."""
        for case_id, case in state.cases.items():
            self.place(case_id, case)
        self.hold(chain(state.alerts, state.pending))

    def place(self, case_id: str, case: ItemCase) -> None:
        for entries, entry in self._entries(case_id, case):
            insort(entries, entry)

    def unplace(self, case_id: str, case: ItemCase) -> None:
        for entries, entry in self._entries(case_id, case):
            at = bisect_left(entries, entry)
            if at == len(entries) or entries[at][1] != case_id:
                # Not with instants in legal time, as all of an event's are; instants in other
                # zones that do not compare as the instants they are (a daylight-saving fold)
                # could misplace a case, and judging on would then miss findings silently.
                raise RuntimeError(f"PW-013 index of item: {case_id} is not where its standing puts it")
            del entries[at]

    def hold(self, pairs: Iterable[tuple[str, str]]) -> None:
        for pair in pairs:
            for case_id in pair:
                self.held.setdefault(case_id, set()).add(pair)

    def release(self, case_id: str) -> set[tuple[str, str]]:
        """Forget the pairs naming `case_id`, and return them."""
        pairs = self.held.pop(case_id, set())
        for pair in pairs:
            for other_id in pair:
                others = self.held.get(other_id)
                if others is not None:
                    others.discard(pair)
        return pairs

    def _entries(self, case_id: str, case: ItemCase) -> Iterator[tuple[list[tuple[datetime, str]],
                                                                        tuple[datetime, str]]]:
        """The orders a case stands in, with its entry in each."""
        if case.accepted is None:
            return
        accepted = case.accepted.time
        if case.closed_at is None:
            yield self.open, (accepted, case_id)
        else:
            yield self.closed, (case.closed_at, case_id)
        if case.grant is not None:
            yield self.granted, (accepted, case_id)

    def overtaken(self, granted: ItemCase) -> Iterator[str]:
        """The cases that may have been waiting when `granted` (accepted, with a grant) got its
        grant: accepted before it and not closed, or closed after the grant."""
        yield from (case_id for _, case_id in self.open[:bisect_left(self.open, granted.accepted.time, key=_FIRST)])
        yield from (case_id for _, case_id in self.closed[bisect_right(self.closed, granted.grant.time, key=_FIRST):])

    def overtaking(self, earlier: ItemCase) -> Iterator[str]:
        """The granted cases accepted after `earlier` (accepted)."""
        yield from (case_id for _, case_id in self.granted[bisect_right(self.granted, earlier.accepted.time,
                                                                         key=_FIRST):])


def apply_item_update(
    state: ItemState, index: ItemIndex, case_id: str, update: ItemCase | None, cause: tuple[str, datetime],
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
        return recheck_pending(state, index, progress)
    if old is not None:
        index.unplace(case_id, old)
    index.place(case_id, update)
    state.cases[case_id] = update
    state.left.pop(case_id, None)
    emitted = _judge_and_hold(state, index, _pairs_of(state, index, case_id), cause, progress)
    _forget(state, index, progress)
    return emitted


def _pairs_of(state: ItemState, index: ItemIndex, case_id: str) -> list[tuple[str, str]]:
    """The pairs (granted, earlier) of `case_id` with the item's other cases that judging can
    change, in order: those where the granted side got its grant while the earlier waited, and
    those that hold a record or wait. Judging any other pair does nothing."""
    cases, alerts, pending = state.cases, state.alerts, state.pending
    case = cases[case_id]
    pairs = {pair for pair in index.held.get(case_id, ()) if pair in alerts or pair in pending}
    if case.accepted is not None:
        if case.grant is not None:
            pairs.update((case_id, other_id) for other_id in index.overtaken(case)
                         if other_id != case_id and _waited(case, cases[other_id]))
        pairs.update((other_id, case_id) for other_id in index.overtaking(case)
                     if other_id != case_id and _waited(cases[other_id], case))
    return sorted(pairs)


def recheck_pending(state: ItemState, index: ItemIndex, progress: Progress) -> list[Alert]:
    """Judge the waiting pairs again and forget what may be forgotten (more has been read)."""
    pairs = sorted(state.pending)
    state.pending = set()
    emitted = _judge_and_hold(state, index, pairs, None, progress)
    _forget(state, index, progress)
    return emitted


def _judge_and_hold(state: ItemState, index: ItemIndex, pairs: list[tuple[str, str]],
                    cause: tuple[str, datetime] | None, progress: Progress) -> list[Alert]:
    """`_judge`, and the pairs that now hold a record or wait into the index: the one place a pair
    enters `alerts` or `pending`, so that `_pairs_of` and `_forget` find every such pair there."""
    emitted = _judge(state, pairs, cause, progress)
    index.hold(pair for pair in pairs if pair in state.alerts or pair in state.pending)
    return emitted


def _forget(state: ItemState, index: ItemIndex, progress: Progress) -> None:
    for case_id, at in list(state.left.items()):
        if progress.passed(at) and not any(pair in state.pending for pair in index.held.get(case_id, ())):
            del state.left[case_id]
            index.unplace(case_id, state.cases.pop(case_id))
            for pair in index.release(case_id):
                state.alerts.pop(pair, None)


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
