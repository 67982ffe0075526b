"""The rule engine: events and a clock in, state changes and alerts out. No I/O, no wall clock.

Two stages, each pure:
- `CaseJudge` judges one case: an event applied to it, or the clock reaching it. It holds
  configuration only; the caller holds the case. `CaseBook` holds cases, their timers and a
  clock, and turns each input into `CaseOutcome`s: alerts, the case's report for its referral,
  and its standing on a PW-013 item.
- The city stage (`alerts.city`) takes what `CaseOutcome.city_inputs` says of each outcome:
  PW-013 item states and the referral book, in event-time order behind a watermark.

`Engine` wires the two together in one process (replay, the embedded monitor), the case book's
clock being the watermark; the Kafka runtime keeps one `CaseBook` per partition and carries the
same inputs to one city stage on a topic, with the partitions' clocks.

The clock only moves forward; it is at least the time of the latest event seen. An event older
than the clock is a late event: it is applied in event-time terms and the case is re-judged, which
retracts whatever alert it disproves.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from permitwatch.alerts.case import CaseState
from permitwatch.alerts.city import (
    AlertInput,
    CityBook,
    CityInput,
    CityState,
    Emitted,
    ExemptionInput,
    ItemUpdate,
    Refusal,
    ReportInput,
)
from permitwatch.alerts.clock import JUST_AFTER, LegalClock, WorkingCalendar
from permitwatch.alerts.emit import alert_id, build_alert, retraction
from permitwatch.alerts.law import SZ_XK_15
from permitwatch.alerts.referrals import CaseReport, ReferralBook
from permitwatch.alerts.rules import RULES
from permitwatch.alerts.rules.base import CLOSING, CaseView, Context, Due, Finding, Rule
from permitwatch.alerts.rules.pw013_out_of_order_grant import ItemCase, item_case, tracks
from permitwatch.models.alerts import Alert, Message, Officers
from permitwatch.models.catalog import CatalogEntry
from permitwatch.models.common import LEGAL_TZ
from permitwatch.models.errors import Refused
from permitwatch.models.events import CloudEvent, ExemptionRecorded, content_digest, event_key
from permitwatch.models.referrals import Exemption
from permitwatch.models.settings import RuleSettings

_UNCHANGED = object()


@dataclass(slots=True)
class CaseResult:
    alerts: list[Alert] = field(default_factory=list)
    report: CaseReport | None = None
    """For a case with a referral: what the referral needs to know of it now."""
    wake_at: datetime | None = None
    """When the case must be looked at again (a deadline, or the day it may be forgotten)."""
    drop: bool = False
    """The case is closed, has nothing pending, and its retention has passed."""
    item_update: object = _UNCHANGED
    """An `ItemCase` for PW-013 when the case's standing on a quantity-limited item changed."""


def officers_of(case: CaseState) -> Officers:
    handler, reviewer, approver = case.handler, case.reviewer, case.approver
    return Officers(
        handler=handler.officer if handler else None,
        reviewer=reviewer.officer if reviewer else None,
        approver=approver.officer if approver else None,
    )


class CaseJudge:
    """Applies the rules to one case. Holds configuration only, never case state."""

    def __init__(self, catalog: Mapping[str, CatalogEntry], calendar: WorkingCalendar, settings: RuleSettings,
                 always_full: bool = False):
        """`always_full` re-runs every rule on every event: slower, and by construction what the
        selective path must equal (the tests compare the two)."""
        self.always_full = always_full
        self.settings = settings
        self.catalog = dict(catalog)
        self.calendar = calendar
        self.ctx = Context(LegalClock(calendar, settings.end_of_day_time), settings, self.catalog)
        self.rules = tuple(r for r in RULES if r.id not in settings.disabled_rules)
        self._state_rules = tuple(r for r in self.rules if r.evaluate)
        self._timed = {r.id: r for r in self._state_rules if r.timed}
        self._on_trigger: dict[type, tuple[Rule, ...]] = {}
        self._settles: dict[type, tuple[str, ...]] = {}
        self._on_event: dict[type, tuple[Rule, ...]] = {}
        for rule in self._state_rules:
            for kind in rule.triggers:
                self._on_trigger[kind] = (*self._on_trigger.get(kind, ()), rule)
            for kind in rule.settled_by - rule.triggers:
                self._settles[kind] = (*self._settles.get(kind, ()), rule.id)
        for rule in self.rules:
            if rule.on_event:
                for kind in rule.event_types:
                    self._on_event[kind] = (*self._on_event.get(kind, ()), rule)
        self.tracked_items = frozenset(
            code for code, item in self.catalog.items() if tracks(item)
        ) if "PW-013" not in settings.disabled_rules else frozenset()
        self._remedied = tuple(r for r in self.rules if r.remedy is not None)
        self._retention = timedelta(days=settings.closed_case_retention_days)
        self._idle_retention = timedelta(days=settings.idle_case_retention_days)

    @property
    def calendar_version(self) -> str:
        return self.calendar.version

    def item(self, code: str | None) -> CatalogEntry | None:
        return self.catalog.get(code) if code else None

    # ----- judging -----

    def on_event(self, case: CaseState, event: CloudEvent, now: datetime) -> CaseResult:
        """Apply a new (not duplicate) event to `case` and judge it.

        An event in order (not older than the case's latest, nor than an alert it could
        disprove) runs only the rules it can affect, and meets the pending deadlines of the rules
        it settles. A late one re-runs every rule of the case, in event time."""
        kind = type(event)
        late = self.always_full or _late(case, event)
        before = self._standing(case)
        case.apply(event)
        self.ctx.now = now
        view = CaseView(case, self.ctx)
        result = CaseResult()
        if late:
            self._judge(view, self._state_rules, result, event)
        else:
            settled = self._settles.get(kind)
            if settled and case.dues:
                for rule_id in settled:
                    case.dues.pop(rule_id, None)
            rules = self._on_trigger.get(kind)
            if rules:
                self._judge(view, rules, result, event)
        if case.dues:
            case.expires = None
            result.wake_at = min(case.dues.values())
        else:
            if case.expires is None or kind in CLOSING:
                case.expires = max(case.last_time, now) + self.retention_of(case)
            result.wake_at = case.expires
        if result.alerts:
            view.retracted = tuple(a.alert_id for a in result.alerts if a.status == "retracted")
        officers = None
        for rule in self._on_event.get(type(event), ()):
            for finding in rule.on_event(event, view):
                officers = officers or officers_of(case)
                result.alerts.append(self._alert(rule, finding, case, officers))
        if before is not None or case.item_code in self.tracked_items:
            after = self._standing(case)
            if after != before:
                result.item_update = after
        if case.referable:
            result.report = self.report(case)
        return result

    def report(self, case: CaseState) -> CaseReport:
        """The officers and late remedies of a case, for its referral."""
        officers = tuple(
            (role, known.officer if known else None, (known.first_event_id,) if known else ())
            for role, known in (("handler", case.handler), ("reviewer", case.reviewer), ("approver", case.approver))
        )
        remedies = []
        for rule in self._remedied:
            fact = rule.remedy(case)
            if fact is not None:
                remedies.append((rule.id, fact.time, fact.event_id))
        return CaseReport(case.case_id, case.item_code, case.department, officers, tuple(remedies), len(case.seen))

    def on_clock(self, case: CaseState, now: datetime) -> CaseResult:
        """Judge the deadline rules of `case` that are due at `now`; forget a case whose time is up."""
        due = [self._timed[rule_id] for rule_id, instant in (case.dues or {}).items() if instant <= now]
        return self._judge_at(case, now, due)

    def rejudge(self, case: CaseState, now: datetime, reason: Message) -> CaseResult:
        """Judge every state rule again (the catalog or the calendar changed)."""
        return self._judge_at(case, now, self._state_rules, reason)

    def _judge_at(self, case: CaseState, now: datetime, rules, reason: Message | None = None) -> CaseResult:
        self.ctx.now = now
        result = CaseResult()
        if rules:
            self._judge(CaseView(case, self.ctx), rules, result, None, reason)
            if case.referable and any(alert.signal == "red" for alert in result.alerts):
                result.report = self.report(case)  # the referral's first version names the officers
        if case.dues:
            case.expires = None
            result.wake_at = min(case.dues.values())
            return result
        if case.expires is None:
            # The last deadline just passed: keep the case a while for late events to retract.
            case.expires = now + self.retention_of(case)
        elif now >= case.expires:
            # Events since the expiry was set only update last_time; honour them now.
            quiet_until = case.last_time + self.retention_of(case)
            if quiet_until <= now and not result.alerts:
                result.drop = True
                return result
            case.expires = max(quiet_until, now + timedelta(seconds=1))
        result.wake_at = case.expires
        return result

    def retention_of(self, case: CaseState) -> timedelta:
        return self._retention if case.closure else self._idle_retention

    def _judge(
        self, view: CaseView, rules, result: CaseResult, event: CloudEvent | None, reason: Message | None = None
    ) -> None:
        """Evaluate `rules`: emit new findings, retract vanished ones (naming `event`, or `reason`),
        and record when each deadline rule wants to look again."""
        case = view.case
        now = view.now
        found: dict[str, tuple[Rule, Finding]] = {}
        judged = set()
        dues = case.dues
        for rule in rules:
            judged.add(rule.id)
            wake = None
            for outcome in rule.evaluate(view):
                if isinstance(outcome, Due):
                    # A Due at or before now would be a rule bug; looking again now finds nothing new.
                    if outcome.instant > now and (wake is None or outcome.instant < wake):
                        wake = outcome.instant
                else:
                    found[alert_id(case.case_id, rule.id, outcome.fact)] = (rule, outcome)
            if wake is not None:
                if dues is None:
                    dues = case.dues = {}
                dues[rule.id] = wake
            elif dues and rule.id in dues:
                del dues[rule.id]
        officers = None
        if case.alerts:
            for ident, alert in list(case.alerts.items()):
                if alert.rule in judged and ident not in found:
                    del case.alerts[ident]
                    if event is not None:
                        result.alerts.append(retraction(alert, (event.id,), event.time, _disproved_by(event)))
                    else:
                        result.alerts.append(retraction(alert, (), now, reason or _CLOCK_REASON))
        for ident, (rule, finding) in found.items():
            if case.alerts is None:
                case.alerts = {}
            if ident not in case.alerts:
                officers = officers or officers_of(case)
                alert = case.alerts[ident] = self._alert(rule, finding, case, officers)
                result.alerts.append(alert)

    def _alert(self, rule: Rule, finding: Finding, case: CaseState, officers: Officers) -> Alert:
        alert = build_alert(rule, finding, case.case_id, case.item_code, case.department, officers,
                            self.settings.signals.get(rule.id))
        if alert.signal == "red":
            case.referable = True
        return alert

    def _standing(self, case: CaseState) -> ItemCase | None:
        if case.item_code not in self.tracked_items:
            return None
        return item_case(case, officers_of(case))


def _late(case: CaseState, event: CloudEvent) -> bool:
    """Older than the case's latest event (at the same instant: earlier in the procedure), or than
    an alert of the case it might disprove."""
    if case.before_last(event):
        return True
    return any(alert.detected_at > event.time for alert in case.alerts.values()) if case.alerts else False


_CLOCK_REASON = Message(zh="撤回: 重新计算期限后该事实不成立", en="retracted: the recomputed deadline no longer supports it")


def _disproved_by(event: CloudEvent) -> Message:
    return Message(
        zh=f"撤回: 事件 {event.id} ({event.kind}, {event.time:%Y-%m-%d %H:%M}) 表明该事实不成立",
        en=f"retracted: event {event.id} ({event.kind} at {event.time:%Y-%m-%d %H:%M}) disproves it",
    )


class TimerIndex:
    """When each case must be looked at next, ordered by instant then case id (deterministic).

    Instants are aware datetimes in legal time; datetimes sharing one tzinfo compare exactly and
    fast, so the heap orders them directly. A case moved later keeps its earlier heap entry, which
    re-files it when it comes up: most moves are later (expiry pushed on), so this saves pushes."""

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, str]] = []
        self._due: dict[str, datetime] = {}

    def schedule(self, case_id: str, instant: datetime) -> None:
        current = self._due.get(case_id)
        if current == instant:
            return
        if instant.tzinfo is not LEGAL_TZ:
            instant = instant.astimezone(LEGAL_TZ)
        self._due[case_id] = instant
        if current is None or instant < current:
            heapq.heappush(self._heap, (instant, case_id))

    def cancel(self, case_id: str) -> None:
        self._due.pop(case_id, None)

    def pop_due(self, now: datetime) -> Iterator[tuple[str, datetime]]:
        """(case id, instant) for every instant at or before `now`, earliest first. Scheduling
        during the iteration is fine: a new instant up to `now` is yielded in its turn."""
        if now.tzinfo is not LEGAL_TZ:
            now = now.astimezone(LEGAL_TZ)
        heap, due = self._heap, self._due
        while heap and heap[0][0] <= now:
            instant, case_id = heapq.heappop(heap)
            current = due.get(case_id)
            if current == instant:
                del due[case_id]
                yield case_id, instant
            elif current is not None and current > instant:
                heapq.heappush(heap, (current, case_id))

    def next_instant(self) -> datetime | None:
        """The earliest scheduled instant, or None."""
        heap, due = self._heap, self._due
        while heap:
            instant, case_id = heap[0]
            current = due.get(case_id)
            if current == instant:
                return instant
            heapq.heappop(heap)
            if current is not None and current > instant:
                heapq.heappush(heap, (current, case_id))
        return None

    def scheduled(self, case_id: str) -> datetime | None:
        return self._due.get(case_id)

    def scheduled_all(self) -> Iterator[tuple[str, datetime]]:
        """(case id, instant) of every case scheduled: all a copy needs (`schedule` each again)."""
        return iter(self._due.items())

    def __len__(self) -> int:
        return len(self._due)


@dataclass
class EngineStats:
    events: int = 0
    duplicates: int = 0
    late_events: int = 0
    unknown_items: int = 0
    cases_opened: int = 0
    cases_retired: int = 0
    cases_restored: int = 0
    alerts: Counter = field(default_factory=Counter)
    retractions: Counter = field(default_factory=Counter)

    def count(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            if alert.status == "active":
                self.alerts[(alert.rule, alert.signal)] += 1
            else:
                self.retractions[alert.rule] += 1


@dataclass(slots=True)
class CaseOutcome:
    """What judging one case once produced, for the stages downstream of the cases."""

    case_id: str
    alerts: list[Alert]
    report: CaseReport | None
    item_update: ItemUpdate | None
    at: datetime
    """When: the event's time, or the clock's."""
    judged_at: datetime
    """The case book's clock when the case was judged: a timer's instant, or the clock at which an
    input was applied (`Emitted.found_at`)."""

    def city_inputs(self) -> list[CityInput]:
        """What the city stage hears of this outcome (every runtime routes by this): the red
        alerts with the case's report, or else the report alone when the case has a referral and
        changed; and the case's new standing on its PW-013 item."""
        red = tuple(alert for alert in self.alerts if alert.signal == "red")
        inputs: list[CityInput] = [AlertInput(red, self.report, self.at)] if red else []
        if not inputs and self.report is not None:
            inputs.append(ReportInput(self.report, self.at))
        if self.item_update is not None:
            inputs.append(self.item_update)
        return inputs


class ConflictingDuplicate(Refused):
    """An event with the `source` and `id` of one already applied, and other content (EVENTS.md):
    it is not applied."""


class CaseBook:
    """The cases of one runtime (or of one Kafka partition), their timers and their clock.

    `cases` is any mutable mapping: a dict in one process, a view over a faust table on Kafka.
    The clock only moves forward; an input older than it is applied in event-time terms.

    Every case knows the events applied to it (`CaseState.seen`). `log_wide_ids` also keeps them
    for the whole book, so that an event reusing another case's `source` and `id` is recognised
    (replay); a runtime with a journal checks that there instead (the embedded monitor).

    A case whose retention has passed (closed, or idle) leaves `cases` for `retired`, a mapping
    the runtime keeps in a compact form; a later event for it brings it back, so it is judged
    against its history, never as a new case (EVENTS.md, old cases)."""

    def __init__(self, judge: CaseJudge, cases: MutableMapping[str, CaseState] | None = None,
                 timers: TimerIndex | None = None, now: datetime | None = None, log_wide_ids: bool = False,
                 retired: MutableMapping[str, CaseState] | None = None):
        self.judge = judge
        self.cases: MutableMapping[str, CaseState] = {} if cases is None else cases
        self.timers = timers or TimerIndex()
        self.now = now
        self.stats = EngineStats()
        self.ids: dict[int, int] | None = {} if log_wide_ids else None
        self.retired: MutableMapping[str, CaseState] = {} if retired is None else retired

    def process(self, event: CloudEvent, digest: int) -> list[CaseOutcome]:
        """Apply one case event, whose content has `digest` (`content_digest`); first move the
        clock to its time if it is ahead. A repeat of an event is counted and ignored;
        `ConflictingDuplicate` when its source and id came before with other content."""
        stats = self.stats
        key = event_key(event)
        known = self.cases.get(event.subject) or self._restore(event.subject)
        if self.ids is not None:
            first = self.ids.get(key)
        else:
            first = known.seen.get(key) if known is not None else None
        if first is not None:
            if first != digest:
                raise ConflictingDuplicate(
                    f"id: {event.id!r} from {event.source!r} was applied before with other content; this one is "
                    "not applied (EVENTS.md: source and id identify an event across the whole log)")
            stats.duplicates += 1
            return []
        time = event.time
        out = self.advance(time) if self.now is None or time > self.now else []
        # Again after the advance, which may have retired it.
        case = self.cases.get(event.subject) or self._restore(event.subject)
        if case is None:
            case = self.cases[event.subject] = CaseState(event.subject)
            stats.cases_opened += 1
        case.seen[key] = digest
        if self.ids is not None:
            self.ids[key] = digest
        stats.events += 1
        if case.last_time is not None and time < case.last_time:
            stats.late_events += 1
        item_code = event.data.item_code
        if item_code and item_code not in self.judge.catalog:
            stats.unknown_items += 1
        out.append(self._settle(case, self.judge.on_event(case, event, self.now), event))
        return out

    def advance(self, to: datetime) -> list[CaseOutcome]:
        """Move the clock to `to`, firing every timer it passes at its own instant, earliest first
        (so alerts come out in the order their deadlines passed, across all cases)."""
        out: list[CaseOutcome] = []
        if self.now is not None and to <= self.now:
            return out
        earliest = self.timers.next_instant()
        if earliest is None or earliest > to:
            self.now = to
            return out
        for case_id, instant in self.timers.pop_due(to):
            self.now = instant
            case = self.cases.get(case_id)
            if case is not None:
                out.append(self._settle(case, self.judge.on_clock(case, instant), None))
        self.now = to
        return out

    def rejudge_all(self, judge: CaseJudge, reason: Message) -> list[CaseOutcome]:
        """Adopt a new judge (catalog or calendar changed) and judge every case again."""
        self.judge = judge
        if self.now is None:
            return []
        return [self._settle(case, judge.rejudge(case, self.now, reason), None)
                for case in (self.cases[case_id] for case_id in sorted(self.cases))]

    def _settle(self, case: CaseState, result: CaseResult, cause: CloudEvent | None) -> CaseOutcome:
        now = self.now
        update = None
        if result.item_update is not _UNCHANGED:
            update = ItemUpdate(case.item_code, case.case_id, result.item_update,
                                (cause.id, cause.time) if cause else (case.case_id, now), self.judge.report(case))
        if result.drop:
            del self.cases[case.case_id]
            self.timers.cancel(case.case_id)
            case.dues = case.expires = None
            self.retired[case.case_id] = case
            self.stats.cases_retired += 1
            if case.item_code in self.judge.tracked_items:
                update = ItemUpdate(case.item_code, case.case_id, None, (case.case_id, now), self.judge.report(case))
        elif result.wake_at is not None:
            self.timers.schedule(case.case_id, result.wake_at)
        return CaseOutcome(case.case_id, result.alerts, result.report, update, cause.time if cause else now, now)

    def _restore(self, case_id: str) -> CaseState | None:
        """A retired case back among the cases, kept until its retention passes again."""
        case = self.retired.pop(case_id, None)
        if case is None:
            return None
        self.cases[case_id] = case
        self.stats.cases_restored += 1
        case.expires = max(case.last_time, self.now or case.last_time) + self.judge.retention_of(case)
        self.timers.schedule(case_id, case.expires)
        return case

    def department_of(self, event: CloudEvent) -> str | None:
        """The department an applied event counts for (metrics): the one it names, else its case's."""
        department = event.data.department
        if department is None:
            case = self.cases.get(event.subject)
            department = case.department if case is not None else None
        return department

    @property
    def open_cases(self) -> int:
        return len(self.cases)


class Engine:
    """The two stages (cases, then the city: PW-013 items and referrals) wired together in one
    process, for the runtimes that keep all state in one place (replay, the embedded monitor).
    The case book's clock is the city stage's watermark."""

    def __init__(self, catalog: Mapping[str, CatalogEntry], calendar: WorkingCalendar, settings: RuleSettings,
                 always_full: bool = False, log_wide_ids: bool = True,
                 retired: MutableMapping[str, CaseState] | None = None):
        """`retired`: where cases past their retention are kept (`CaseBook`); a runtime gives a
        compact store (`streams.retired.CompactCases`)."""
        self.book = CaseBook(CaseJudge(catalog, calendar, settings, always_full), log_wide_ids=log_wide_ids,
                             retired=retired)
        self.city = CityBook(settings)

    @property
    def judge(self) -> CaseJudge:
        return self.book.judge

    @property
    def referrals(self) -> ReferralBook:
        return self.city.referrals

    @property
    def cases(self) -> MutableMapping[str, CaseState]:
        return self.book.cases

    @property
    def timers(self) -> TimerIndex:
        return self.book.timers

    @property
    def now(self) -> datetime | None:
        return self.book.now

    @property
    def stats(self) -> EngineStats:
        return self.book.stats

    @property
    def open_cases(self) -> int:
        return self.book.open_cases

    # ----- input -----

    def process(self, event: CloudEvent, origin: str = "", raw: bytes = b"", digest: int | None = None) -> Emitted:
        """Apply one event (or record an exemption); first move the clock to its time if it is
        ahead. `origin` and `raw`: where it came from and its bytes, for its dead letter if it is
        refused (`Emitted.refused`: a conflicting duplicate, an exemption of a case with no
        referral). `digest`: its `content_digest`, if the caller has it; else read from `raw`, or
        without `raw` from the model."""
        if isinstance(event, ExemptionRecorded):
            return self._route(self.book.advance(event.time),
                               ExemptionInput(event.subject, exemption_of(event), event.time, origin, raw))
        try:
            if digest is None:
                digest = content_digest(raw or event.model_dump_json())
            outcomes = self.book.process(event, digest)
        except ConflictingDuplicate as conflict:
            return Emitted(refused=[Refusal(origin, raw, "conflicting_duplicate", str(conflict))])
        return self._route(outcomes)

    def advance(self, to: datetime) -> Emitted:
        return self._route(self.book.advance(to))

    def finish(self) -> Emitted:
        """The input is complete (the end of a replayed file): nothing else will come at the last
        instant, so what waited for the clock to pass it goes through (findings that wait for
        every event of their instant, the city stage's inputs)."""
        if self.book.now is None:
            return Emitted()
        out = self._route(self.book.advance(self.book.now + JUST_AFTER))
        late = self.city.advance(self.book.now + JUST_AFTER)
        self.stats.count(late.alerts)
        out.extend(late)
        return out

    def next_instant(self) -> datetime | None:
        """When the clock must next move: the earliest deadline, or just past the oldest input the
        city stage holds."""
        deadline = self.timers.next_instant()
        held = self.city.next_input()
        if held is not None:
            held += JUST_AFTER
            return held if deadline is None or held < deadline else deadline
        return deadline

    def set_calendar(self, calendar: WorkingCalendar) -> Emitted:
        """Adopt a new calendar and recompute every open deadline (provisional ones become exact)."""
        judge = self.judge
        return self._route(self.book.rejudge_all(CaseJudge(judge.catalog, calendar, judge.settings, judge.always_full),
                                                 calendar_changed(calendar)))

    def set_catalog(self, catalog: Mapping[str, CatalogEntry]) -> Emitted:
        """Adopt a new item catalog; state rules are judged again (event-judged findings stand)."""
        judge = self.judge
        return self._route(self.book.rejudge_all(CaseJudge(catalog, judge.calendar, judge.settings, judge.always_full),
                                                 CATALOG_CHANGED))

    def _route(self, outcomes: list[CaseOutcome], extra: CityInput | None = None) -> Emitted:
        out = Emitted()
        city = self.city
        for outcome in outcomes:
            out.alerts += outcome.alerts
            for alert in outcome.alerts:
                out.found_at[alert.alert_id] = outcome.judged_at
            for given in outcome.city_inputs():
                out.extend(city.take(given))
        if extra is not None:
            out.extend(city.take(extra))
        if self.book.now is not None:
            out.extend(city.advance(self.book.now))
        if out.alerts:
            self.stats.count(out.alerts)
        return out

    # ----- state, for checkpoints -----

    def state(self) -> EngineState:
        """Everything the engine knows, as plain data (configuration excluded): what a runtime
        saves in a checkpoint."""
        book = self.book
        return EngineState(book.cases, book.timers, book.now, book.stats, self.city.state(), book.ids, book.retired)

    def load_state(self, state: EngineState) -> None:
        book = self.book
        book.cases, book.timers, book.now, book.stats = state.cases, state.timers, state.now, state.stats
        book.ids, book.retired = state.ids, state.retired
        self.city.load_state(state.city)


@dataclass
class EngineState:
    cases: dict[str, CaseState]
    timers: TimerIndex
    now: datetime | None
    stats: EngineStats
    city: CityState
    ids: dict[int, int] | None
    retired: MutableMapping[str, CaseState]


def exemption_of(record: ExemptionRecorded) -> Exemption:
    data = record.data
    return Exemption(ground=data.ground, basis=SZ_XK_15[data.ground].cite, reason=data.reason,
                     recorded_by=data.recorded_by, recorded_at=record.time, decided_at=data.decided_at)


def calendar_changed(calendar: WorkingCalendar) -> Message:
    return Message(zh=f"撤回: 日历更新为 {calendar.version} 后重新计算的期限不支持该事实",
                   en=f"retracted: deadlines recomputed on calendar {calendar.version} no longer support it")


CATALOG_CHANGED = Message(zh="撤回: 事项目录更新后该事实不成立", en="retracted: no longer holds under the updated item catalog")
