"""The city stage: what compares cases with one another, in event time.

Two things look across cases: PW-013 (a grant on a quantity-limited item while an application
accepted earlier still waited) and the referrals, whose SZ-XK art. 12(1) finding compares the
referrals of one officer or department. Both take their inputs from the case stage (`CaseBook`):
a case's standing on its item, its red alerts, its report, an operator's exemption.

Every input carries `at`, the legal time of what produced it (the event's time, or the deadline
instant that fired). The stage applies its inputs in the order of (`at`, case id, arrival), and
only once the `watermark` has passed `at`; the inputs of one case keep their arrival order (a
case's later input is a newer picture of it, even when a late event dates it earlier), so while a
case has inputs queued, a later one is queued behind them: the watermark is a promise that no input older than it
is still to come. So what the stage emits is a function of the inputs and their times, not of the
order they arrived in: one process gives the clock of its case stage as the watermark (replay,
the embedded monitor); on Kafka the city stage gives the oldest clock among the events
partitions, which may be read far apart. Inputs from one case come from one place in order, so
their arrival order is the same everywhere.

An input older than what the stage has already applied (a late event of a case) is applied at
once: nothing can be done about the order of what came late. The referral versions it causes are
dated no earlier than the referral's previous version.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from permitwatch.alerts.referrals import CaseReport, NoReferral, ReferralBook, _Working
from permitwatch.alerts.rules import RULES_BY_ID
from permitwatch.alerts.rules.pw013_out_of_order_grant import (
    ItemCase,
    ItemIndex,
    ItemState,
    apply_item_update,
    recheck_pending,
)
from permitwatch.models.alerts import Alert
from permitwatch.models.referrals import Exemption, Referral
from permitwatch.models.settings import RuleSettings


class ItemUpdate(NamedTuple):
    """A case's new standing on a PW-013 item (None: the case is forgotten)."""

    item_code: str
    case_id: str
    standing: ItemCase | None
    cause: tuple[str, datetime]
    """(event id, time) of what changed it; (case id, clock) when the clock did."""
    report: CaseReport | None = None
    """The case's report, for the referral of a PW-013 red card raised here."""

    @property
    def at(self) -> datetime:
        return self.cause[1]


class AlertInput(NamedTuple):
    """The red alerts one outcome of a case raised (an event, or a deadline that passed), for the
    referral of its case, with the case's report: one version for all of them."""

    alerts: tuple[Alert, ...]
    report: CaseReport | None
    at: datetime

    @property
    def found(self) -> tuple[Alert, ...]:
        # An embedded checkpoint written before 2026-12-01 holds one alert here.
        return self.alerts if isinstance(self.alerts, tuple) else (self.alerts,)

    @property
    def case_id(self) -> str:
        return self.found[0].case_id


class ReportInput(NamedTuple):
    """The case of a referral changed without raising a red alert."""

    report: CaseReport
    at: datetime

    @property
    def case_id(self) -> str:
        return self.report.case_id


class ExemptionInput(NamedTuple):
    """An operator's SZ-XK art. 15 exemption. `origin` and `raw` say where it came from, for the
    dead letter when its case has no referral."""

    case_id: str
    exemption: Exemption
    at: datetime
    origin: str = ""
    raw: bytes = b""


CityInput = ItemUpdate | AlertInput | ReportInput | ExemptionInput


def promised(inputs: list[CityInput], now: datetime | None) -> list[tuple[CityInput, datetime | None]]:
    """Each input of one step of a case book with the promise its sender makes with it: that
    nothing it sends later is older. A step's inputs come in time order (the deadlines its clock
    passed, then its event), so each promises its own time, and the last the book's clock."""
    last = len(inputs) - 1
    return [(given, now if n == last else given.at) for n, given in enumerate(inputs)]


class Watermark:
    """The oldest of the promises heard from each of `senders` case books (Kafka partitions): no
    input older than it is still to come. None until every sender has been heard."""

    def __init__(self, senders: int, heard: dict[int, datetime] | None = None):
        self.senders = senders
        self.heard: dict[int, datetime] = {} if heard is None else heard

    def hear(self, sender: int, promise: datetime | None) -> None:
        known = self.heard.get(sender)
        if promise is not None and (known is None or promise > known):
            self.heard[sender] = promise

    @property
    def value(self) -> datetime | None:
        heard = self.heard
        return min(heard.values()) if len(heard) == self.senders else None


class Refusal(NamedTuple):
    """An input the stage could not apply: an exemption for a case with no referral."""

    origin: str
    raw: bytes
    category: str
    reason: str


@dataclass(slots=True)
class Emitted:
    """What one input caused: alert records and referral versions, in the order they arose."""

    alerts: list[Alert] = field(default_factory=list)
    referrals: list[Referral] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    found_at: dict[str, datetime] = field(default_factory=dict)
    """Alert id → the case clock when the case stage found it: the instant of the timer that
    fired, or the clock an input was applied at. A deadline alert cannot be emitted before it,
    however much earlier its deadline (a deemed acceptance, a late event), which is what the
    runtimes' deadline lag must leave out."""

    def extend(self, other: Emitted) -> None:
        self.alerts.extend(other.alerts)
        self.referrals.extend(other.referrals)
        self.refused.extend(other.refused)
        self.found_at.update(other.found_at)


@dataclass
class Changes:
    """What changed since a runtime last asked (`CityBook.take_changes`), for the runtimes that
    store the book entry by entry (the Kafka city stage)."""

    referrals: set[str] = field(default_factory=set)
    """Case ids of the referrals whose working copy changed."""
    items: set[str] = field(default_factory=set)
    """Item codes whose PW-013 state changed."""
    item_cases: set[tuple[str, str]] = field(default_factory=set)
    """(item code, case id) of the cases whose standing on the item changed or was forgotten."""
    queued: list[tuple[int, datetime]] = field(default_factory=list)
    """(arrival number, when it goes through) of the inputs queued."""
    dequeued: list[int] = field(default_factory=list)
    """Arrival numbers of the queued inputs applied."""


@dataclass
class CityState:
    """A city book's state as plain data (its indexes are rebuilt from it), for checkpoints."""

    items: dict[str, ItemState]
    reports: dict[str, dict[str, CaseReport]]
    referrals: list[_Working]
    clock: datetime | None
    pending: list[tuple[datetime, str, int, CityInput]]
    arrivals: int


class CityBook:
    """PW-013 item states and the referral book, fed in event-time order behind a watermark.

    `track_changes`: keep `Changes` for `take_changes` (a runtime that stores the book entry by
    entry); off, nothing is kept."""

    def __init__(self, settings: RuleSettings, track_changes: bool = False):
        self.changes = Changes() if track_changes else None
        self.items: dict[str, ItemState] = {}
        self._indexes: dict[str, ItemIndex] = {}
        """Per item, its `ItemIndex`, made from the item's state when first needed: derived, so not
        part of `CityState` (a loaded state gets new ones)."""
        self.reports: dict[str, dict[str, CaseReport]] = {}
        """Per item, the latest report of each case it holds, for the referral of a PW-013 red card."""
        self.referrals = ReferralBook(settings, RULES_BY_ID, track_changes)
        self.clock: datetime | None = None
        """Every input before it has been applied (PW-013's `Progress`: all is known before it)."""
        self._pending: list[tuple[datetime, str, int, CityInput]] = []
        """(when it goes through, case id, arrival, input): a heap."""
        self._queued: dict[str, list] = {}
        """Per case with inputs queued: [how many, when its latest goes through]."""
        self._arrivals = 0

    # ----- input -----

    def take(self, given: CityInput) -> Emitted:
        """Queue an input until the watermark passes it (behind what its case has queued); one
        older than the stage's clock (late) is applied at once when its case has nothing queued."""
        case_id, at = given.case_id, given.at
        held = self._queued.get(case_id)
        if held is None:
            if self.clock is not None and at < self.clock:
                out = Emitted()
                self._apply(given, out)
                return out
            held = self._queued[case_id] = [0, at]
        elif at < held[1]:
            at = held[1]
        held[0] += 1
        held[1] = at
        self._arrivals += 1
        heapq.heappush(self._pending, (at, case_id, self._arrivals, given))
        if self.changes is not None:
            self.changes.queued.append((self._arrivals, at))
        return Emitted()

    def advance(self, watermark: datetime, limit: int | None = None) -> Emitted:
        """Apply, in order, every queued input older than `watermark` (at most `limit` of them),
        then move the clock to it (if all were applied)."""
        out = Emitted()
        pending = self._pending
        applied = 0
        while pending and pending[0][0] < watermark:
            if limit is not None and applied == limit:
                return out
            at, case_id, arrival, given = heapq.heappop(pending)
            held = self._queued[case_id]
            held[0] -= 1
            if not held[0]:
                del self._queued[case_id]
            if self.changes is not None:
                self.changes.dequeued.append(arrival)
            self._move_clock(at, out)
            self._apply(given, out)
            applied += 1
        self._move_clock(watermark, out)
        return out

    def take_changes(self) -> Changes:
        """What changed since the last call (`track_changes` must be on)."""
        changes, self.changes = self.changes, Changes()
        changes.referrals = self.referrals.take_changes()
        return changes

    def next_input(self) -> datetime | None:
        """When the first queued input goes through: the watermark must pass it."""
        return self._pending[0][0] if self._pending else None

    @property
    def waiting(self) -> int:
        """How many inputs are queued for the watermark."""
        return len(self._pending)

    @property
    def arrivals(self) -> int:
        return self._arrivals

    def state(self) -> CityState:
        return CityState(self.items, self.reports, list(self.referrals.referrals.values()), self.clock,
                         self._pending, self._arrivals)

    def load_state(self, state: CityState) -> None:
        self.items, self.reports, self.clock = state.items, state.reports, state.clock
        self._indexes = {}
        self._pending, self._arrivals = state.pending, state.arrivals
        self._queued = {}
        for at, case_id, _, _ in state.pending:
            held = self._queued.setdefault(case_id, [0, at])
            held[0] += 1
            held[1] = max(held[1], at)
        self.referrals.restore(state.referrals)

    # ----- PW-013's Progress: everything before the clock has been applied -----

    def settled(self, case_id: str, at: datetime) -> bool:
        return self.passed(at)

    def passed(self, at: datetime) -> bool:
        return self.clock is not None and self.clock > at

    # ----- applying -----

    def _move_clock(self, to: datetime, out: Emitted) -> None:
        """The clock passed what PW-013 pairs were waiting for (every input at their grant's
        instant has been applied): judge them."""
        if self.clock is not None and to <= self.clock:
            return
        self.clock = to
        for code in [code for code, state in self.items.items() if state.pending or state.left]:
            state = self.items[code]
            self._item_changed(code)
            self._emit_item_alerts(state, recheck_pending(state, self._index(code), self), out)
            self._forget_left(state)

    def _apply(self, given: CityInput, out: Emitted) -> None:
        book = self.referrals
        if isinstance(given, ItemUpdate):
            self._item(given, out)
        elif isinstance(given, AlertInput):
            out.referrals += book.on_alerts(given.found, given.report, given.at)
        elif isinstance(given, ReportInput):
            out.referrals += book.on_report(given.report, given.at)
        else:
            try:
                out.referrals += book.on_exemption(given.case_id, given.exemption, given.at)
            except NoReferral as missing:
                out.refused.append(Refusal(given.origin, given.raw, "no_referral", str(missing)))

    def _item(self, update: ItemUpdate, out: Emitted) -> None:
        state = self.items.get(update.item_code)
        if state is None:
            if update.standing is None:
                return
            state = self.items[update.item_code] = ItemState(update.item_code)
            self.reports[update.item_code] = {}
        self._item_changed(update.item_code, update.case_id)
        if update.report is not None and update.standing is not None:
            self.reports[update.item_code][update.case_id] = update.report
        found = apply_item_update(state, self._index(update.item_code), update.case_id, update.standing, update.cause,
                                  self)
        self._emit_item_alerts(state, found, out)
        if update.report is not None and update.case_id in self.referrals.referrals:
            # A case a PW-013 red card referred hears of its changes here: its own case stage
            # only follows a case that raised a red alert itself.
            out.referrals += self.referrals.on_report(update.report, update.at)
        self._forget_left(state)

    def _emit_item_alerts(self, state: ItemState, alerts: list[Alert], out: Emitted) -> None:
        """The item's alerts, and one referral version for each case they name. One judging finds
        every pair a grant made at its instant on every runtime (the pairs wait until the clock has
        passed the grant, `recheck_pending`), so the versions do not depend on the runtime."""
        reports = self.reports[state.item_code]
        out.alerts += alerts
        by_case: dict[str, list[Alert]] = {}
        for alert in alerts:
            by_case.setdefault(alert.case_id, []).append(alert)
        for case_id, found in by_case.items():
            out.referrals += self.referrals.on_alerts(found, reports.get(case_id),
                                                      max(alert.detected_at for alert in found))

    def _forget_left(self, state: ItemState) -> None:
        """Drop what the item state no longer holds."""
        reports = self.reports[state.item_code]
        if len(reports) > len(state.cases):
            for case_id in [c for c in reports if c not in state.cases]:
                del reports[case_id]
                self._item_changed(state.item_code, case_id)
        if not state.cases:
            del self.items[state.item_code], self.reports[state.item_code]
            self._indexes.pop(state.item_code, None)

    def _index(self, code: str) -> ItemIndex:
        index = self._indexes.get(code)
        if index is None:
            index = self._indexes[code] = ItemIndex(self.items[code])
        return index

    def _item_changed(self, code: str, case_id: str | None = None) -> None:
        if self.changes is not None:
            self.changes.items.add(code)
            if case_id is not None:
                self.changes.item_cases.add((code, case_id))
