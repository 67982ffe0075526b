"""What a rule is, and what it sees.

A rule judges a case in one or both of two ways:
- `evaluate(view)`: from the case's facts (and, for deadline rules, the clock) it yields every
  finding that holds now, plus `Due` instants at which it may start to hold. The engine compares
  the result with what it emitted before: new findings become alerts, vanished ones are retracted.
- `on_event(event, view)`: judges one event on its own merits (a fee, a receipt number). Such a
  finding never depends on other events, so it is never retracted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, NamedTuple

from permitwatch.alerts.case import CaseState, Fact
from permitwatch.alerts.clock import Deadline, LegalClock
from permitwatch.alerts.deadlines import Anchor, CaseClock, ExtensionCheck, ResponseWindow
from permitwatch.models import events as ev
from permitwatch.models.alerts import LegalBasis
from permitwatch.models.catalog import CatalogEntry
from permitwatch.models.events import CloudEvent
from permitwatch.models.settings import RuleSettings, Signal


class Finding(NamedTuple):
    """A fact a rule proves about a case. `fact` identifies it (it is part of the alert id)."""

    fact: str
    evidence: tuple[str, ...]
    detected_at: datetime
    zh: str
    en: str
    deadline: Deadline | None = None
    signal: Signal | None = None
    basis: tuple[LegalBasis, ...] | None = None


class Due(NamedTuple):
    """The rule must look at the case again at this instant."""

    instant: datetime


class Context:
    """Everything a rule may consult besides the case: law settings, catalog, legal clock, now."""

    def __init__(self, clock: LegalClock, settings: RuleSettings, catalog: Mapping[str, CatalogEntry]):
        self.clock = clock
        self.settings = settings
        self.catalog = catalog
        self.now: datetime | None = None
        self.backdating_lag = timedelta(hours=settings.backdating_lag_hours)
        self._case_clocks: dict[str | None, CaseClock] = {}

    def item(self, code: str | None) -> CatalogEntry | None:
        return self.catalog.get(code) if code else None

    def case_clock(self, code: str | None) -> CaseClock:
        case_clock = self._case_clocks.get(code)
        if case_clock is None:
            case_clock = self._case_clocks[code] = CaseClock(self.clock, self.settings, self.item(code))
        return case_clock


_UNSET = object()


class CaseView:
    """A case as the rules see it at `ctx.now`, with the shared deadlines computed at most once."""

    __slots__ = ("_anchor", "_decision", "_promised", "_windows", "case", "clock", "ctx", "item", "now", "retracted")

    def __init__(self, case: CaseState, ctx: Context):
        self.case = case
        self.ctx = ctx
        self.item = ctx.item(case.item_code)
        self.clock = ctx.case_clock(case.item_code)
        self.now = ctx.now
        self.retracted: tuple[str, ...] = ()
        """Alert ids the event being judged has just retracted (PW-018 looks at them)."""
        self._windows = self._anchor = self._decision = self._promised = _UNSET

    @property
    def settings(self) -> RuleSettings:
        return self.ctx.settings

    @property
    def response_windows(self) -> list[ResponseWindow]:
        if self._windows is _UNSET:
            self._windows = self.clock.response_windows(self.case)
        return self._windows

    @property
    def anchor(self) -> Anchor | None:
        if self._anchor is _UNSET:
            anchor = self.clock.plain_acceptance(self.case)
            self._anchor = anchor or self.clock.anchor(self.case, self.response_windows, self.now)
        return self._anchor

    @property
    def decision_deadline(self) -> Deadline | None:
        if self._decision is _UNSET:
            anchor = self.anchor
            self._decision = None if anchor is None else self.clock.decision_deadline(self.case, anchor)
        return self._decision

    @property
    def promised_deadline(self) -> Deadline | None:
        if self._promised is _UNSET:
            self._promised = self.clock.promised_deadline(self.case, self.anchor)
        return self._promised

    def extension_check(self, index: int) -> ExtensionCheck:
        return self.clock.extension_check(self.case, index, self.anchor)

    def until_accepted(self) -> Iterator[Due]:
        """For rules that count from acceptance while there is none yet: look again when the
        answer window runs out, as the application is then deemed accepted."""
        instant = self.clock.awaiting_answer(self.response_windows, self.now)
        if instant is not None:
            yield Due(instant)


def judge_deadline(deadline: Deadline, met_at: datetime | None, now: datetime) -> Due | Literal[True] | None:
    """The common shape of a deadline rule. None: met in time. A `Due`: not due yet, look again
    at the deadline. True: missed (build the finding only then; messages cost time)."""
    if met_at is not None and met_at < deadline.instant:
        return None
    if met_at is None and now < deadline.instant:
        return Due(deadline.instant)
    return True


# Events that can move the acceptance day or the decision deadline.
DEADLINE_INPUTS: frozenset[type[CloudEvent]] = frozenset({
    ev.ApplicationSubmitted, ev.ApplicationAccepted, ev.CorrectionRequested, ev.CorrectionSupplied,
    ev.ProcedureStarted, ev.ProcedureEnded,
})
# Events that end the duty to decide.
CLOSING: frozenset[type[CloudEvent]] = frozenset({ev.DecisionMade, ev.ApplicationWithdrawn, ev.ApplicationRejected})


@dataclass(frozen=True)
class Rule:
    id: str
    signal: Signal
    title_zh: str
    title_en: str
    basis: tuple[LegalBasis, ...]
    parameters: tuple[str, ...] = ()
    evaluate: Callable[[CaseView], Iterable[Finding | Due]] | None = None
    timed: bool = False
    """`evaluate` depends on the clock too: it yields `Due`s and runs again when they come."""
    judged: str = ""
    """How the rule catalog describes when it judges, if not by the above (docs/rules.md)."""
    triggers: frozenset[type[CloudEvent]] = field(default_factory=frozenset)
    """Event types whose arrival (in order) can change what `evaluate` finds. A late event
    re-runs every rule."""
    settled_by: frozenset[type[CloudEvent]] = field(default_factory=frozenset)
    """Event types that meet every pending deadline of the rule when they arrive in order (their
    time is then before any pending deadline), so the rule need not run: its pending looks are
    simply dropped."""
    on_event: Callable[[CloudEvent, CaseView], Iterable[Finding]] | None = None
    event_types: frozenset[type[CloudEvent]] = field(default_factory=frozenset)
    """Event types `on_event` judges."""
    remedy: Callable[[CaseState], Fact | None] | None = None
    """The fact that, once it exists, delivered what the rule found missing (a decision, a
    licence…): late, it is a mitigating circumstance of a referral (SZ-XK art. 14)."""
    remedy_zh: str = ""
    remedy_en: str = ""
