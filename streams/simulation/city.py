"""A simulated city: licensing cases handled by service windows, with violations injected at known
rates and a ground truth of the alerts they must raise. Used by `permitwatch run --demo`,
`permitwatch demo check`, the benchmarks and the tests.

Every case follows a compliant path unless one violation is injected into it. The ground truth of
a case lists each alert its events must raise, with the instant it becomes provable (the deadline
for a deadline rule, the event time otherwise), computed independently of the rules from the plan.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import orjson

from permitwatch.alerts.clock import SHANGHAI, LegalClock, WorkingCalendar
from permitwatch.models.catalog import Catalog, CatalogEntry
from permitwatch.models.common import working_days
from permitwatch.models.events import TYPE_PREFIX
from permitwatch.models.settings import RuleSettings
from permitwatch.streams.simulation.sample_catalog import SAMPLE_CATALOG

INJECTABLE = (
    "PW-001", "PW-002", "PW-003", "PW-004", "PW-005", "PW-006", "PW-007", "PW-008", "PW-009", "PW-010",
    "PW-011", "PW-012", "PW-013", "PW-014", "PW-015", "PW-016", "PW-017", "PW-018", "PW-019",
)


@dataclass(frozen=True, slots=True)
class Expected:
    case_id: str
    rule: str
    signal: str
    at: datetime
    known: datetime
    """From when the monitor can know it: later than `at` when what it rests on comes out only
    later (a deadline counted from a deemed acceptance, known when the correction window closes)."""

    def to_json(self) -> dict:
        return {"case_id": self.case_id, "rule": self.rule, "signal": self.signal, "at": self.at.isoformat(),
                "known": self.known.isoformat()}


@dataclass
class Script:
    case_id: str
    item: CatalogEntry
    injected: str | None
    events: list[tuple[datetime, dict]] = field(default_factory=list)
    expected: list[Expected] = field(default_factory=list)
    settled_at: datetime | None = None
    """When the case stops competing for a quantity-limited item (its decision or withdrawal)."""
    anchor_known: datetime | None = None
    """When the day its time limits count from becomes known, if after that day's events: a case
    deemed accepted on submission (no correction notice within the window) is known to be once the
    window closes."""


class CitySimulator:
    """Generates scripts case by case, in order of submission; `events()` merges them by time."""

    def __init__(
        self,
        seed: int = 0,
        catalog: Catalog = SAMPLE_CATALOG,
        violation_rate: float = 0.2,
        start: date = date(2026, 3, 2),
        cases_per_day: int = 120,
        calendar: WorkingCalendar | None = None,
        settings: RuleSettings | None = None,
        rules: tuple[str, ...] = INJECTABLE,
        namespace: str = "",
        departments: int | None = None,
    ):
        """`namespace` prefixes case and event ids, so that two runs never share an id.
        `departments`: spread the items over this many departments (DEPT-01…) instead of the
        catalog's; 1 puts every case in one department, as many real permit logs have it."""
        self.rng = random.Random(seed)
        self.seed = seed
        self.namespace = namespace
        self.catalog = catalog
        self.items = list(catalog.items)
        self.violation_rate = violation_rate
        self.cases_per_day = cases_per_day
        self.settings = settings or RuleSettings()
        self.clock = LegalClock(calendar or WorkingCalendar(), self.settings.end_of_day_time)
        self.calendar = self.clock.calendar
        self.rules = rules
        self.day = start if self.calendar.is_working_day(start) else self.calendar.next_working_day(start)
        self.counter = itertools.count(1)
        self.event_ids = itertools.count(1)
        self.busy_until: dict[str, datetime] = {}
        self.department = {
            item.item_code: item.department if departments is None else f"DEPT-{index % departments + 1:02d}"
            for index, item in enumerate(self.items)
        }
        self.officers = {
            dept: {role: [f"{dept.lower()}-{role}-{n}" for n in range(1, 4 if role == "handler" else 2)]
                   for role in ("handler", "reviewer", "approver")}
            for dept in set(self.department.values())
        }
        self.ground_truth: list[Expected] = []

    # ----------------------------------------------------------------- calendar helpers

    def wd(self, day: date, n: int) -> date:
        return self.calendar.period_end(day, working_days(n)).last_day

    def at(self, day: date, hour: float) -> datetime:
        minutes = int(hour * 60)
        return datetime.combine(day, time(minutes // 60, minutes % 60), SHANGHAI)

    def office_hour(self) -> float:
        return self.rng.choice([self.rng.uniform(9, 11.5), self.rng.uniform(14, 17)])

    def end_of(self, day: date) -> datetime:
        return self.clock.end_of(day)

    # ----------------------------------------------------------------- cases

    def scripts(self) -> Iterator[Script]:
        """Case scripts in order of submission, forever (the caller stops)."""
        while True:
            arrivals = sorted(self.office_hour() for _ in range(self._volume(self.day)))
            for hour in arrivals:
                yield from self._new_case(self.at(self.day, hour))
            self.day = self.calendar.next_working_day(self.day)

    def _volume(self, day: date) -> int:
        # Mondays are busiest, Fridays quieter, as at real service halls.
        factor = {0: 1.3, 1: 1.1, 2: 1.0, 3: 1.0, 4: 0.8}.get(day.weekday(), 0.5)
        return max(1, int(self.rng.gauss(self.cases_per_day * factor, self.cases_per_day * 0.1)))

    def _new_case(self, submitted_at: datetime) -> Iterator[Script]:
        inject = self.rng.choice(self.rules) if self.rng.random() < self.violation_rate else None
        if inject == "PW-013":
            item = next((i for i in self.items if i.granted_in_order
                         and self.busy_until.get(i.item_code, submitted_at) <= submitted_at), None)
            if item is not None:
                yield from self._out_of_order_pair(item, submitted_at)
                return
            inject = None
        item = self._pick_item(inject, submitted_at)
        script = self._case(item, submitted_at, inject)
        if item.granted_in_order:
            self.busy_until[item.item_code] = script.settled_at or datetime.max.replace(tzinfo=SHANGHAI)
        yield script

    def _pick_item(self, inject: str | None, submitted_at: datetime) -> CatalogEntry:
        def fits(item: CatalogEntry) -> bool:
            if (item.granted_in_order
                    and self.busy_until.get(item.item_code, submitted_at) > submitted_at):
                return False
            needs = {
                "PW-002": lambda i: i.promised_limit is not None and not i.on_the_spot,
                "PW-009": lambda i: i.on_the_spot,
                "PW-010": lambda i: i.licence_required and not i.on_the_spot,
                "PW-012": lambda i: i.hearing_required,
                "PW-014": lambda i: i.preliminary_review,
                "PW-015": lambda i: not i.on_the_spot,
                "PW-016": lambda i: not (i.on_the_spot or i.hearing_required or i.preliminary_review),
                "PW-017": lambda i: not (i.on_the_spot or i.hearing_required or i.preliminary_review),
                "PW-019": lambda i: i.licence_required and not i.on_the_spot,
            }.get(inject)
            return needs is None or needs(item)

        return self.rng.choice([i for i in self.items if fits(i)])

    def _officers(self, item: CatalogEntry) -> tuple[str, str, str]:
        staff = self.officers[self.department[item.item_code]]
        return (self.rng.choice(staff["handler"]), staff["reviewer"][0], staff["approver"][0])

    def _event(self, script: Script, moment: datetime, kind: str, data: dict, recorded_lag: float | None = None) -> None:
        lag = recorded_lag if recorded_lag is not None else self.rng.uniform(5, 180)
        script.events.append((moment, {
            "specversion": "1.0",
            "id": f"{self.namespace}ev-{self.seed}-{next(self.event_ids):08d}",
            "source": f"/shenzhen/{self.department[script.item.item_code].lower()}/window",
            "type": TYPE_PREFIX + kind,
            "time": moment.isoformat(),
            "subject": script.case_id,
            "recordedtime": (moment + timedelta(seconds=lag)).isoformat(),
            "datacontenttype": "application/json",
            "data": data,
        }))

    def _case_id(self, submitted_at: datetime) -> str:
        return f"{self.namespace}SZ-{submitted_at:%Y%m%d}-{next(self.counter):07d}"

    def _expect(self, script: Script, rule: str, signal: str, at: datetime, known: datetime | None = None) -> None:
        script.expected.append(Expected(script.case_id, rule, signal, at, max(at, known or at)))

    def _case(self, item: CatalogEntry, submitted_at: datetime, inject: str | None) -> Script:
        rng = self.rng
        script = Script(self._case_id(submitted_at), item, inject)
        handler, reviewer, approver = self._officers(item)
        materials = [m.code for m in item.materials]
        correction = inject in ("PW-003", "PW-004", "PW-006") or (
            inject not in ("PW-009",) and not item.on_the_spot and rng.random() < 0.25)
        submitted = materials[:-1] if correction else materials
        day0 = submitted_at.date()
        self._event(script, submitted_at, "application.submitted", {
            "item_code": item.item_code, "department": self.department[item.item_code],
            "applicant_id": f"9144030{rng.randrange(10**10):010d}X", "channel": rng.choice(["window", "online", "mobile"]),
            "materials": submitted, "officer": handler,
        })
        last_receipt = submitted_at
        if correction:
            notice_day = self.wd(day0, 7 if inject == "PW-003" else 1)
            asked = materials[-1:] + (["UNLISTED-MATERIAL"] if inject == "PW-006" else [])
            notice_at = self.at(notice_day, 9.5)
            self._event(script, notice_at, "correction.requested",
                        {"notice_no": f"补正-{script.case_id}-1", "materials": asked, "officer": handler})
            if inject == "PW-003":
                window = self.clock.deadline("w", day0, self.settings.correction_notice_limit, "").instant
                self._expect(script, "PW-003", "red", window)
                script.anchor_known = window
            if inject == "PW-006":
                self._expect(script, "PW-006", "red", notice_at)
            last_receipt = self.at(self.wd(notice_day, 1), 10)
            self._event(script, last_receipt, "correction.supplied", {"materials": asked})
            if inject == "PW-004":
                again_at = self.at(self.wd(last_receipt.date(), 1), 9.5)
                self._event(script, again_at, "correction.requested",
                            {"notice_no": f"补正-{script.case_id}-2", "materials": [materials[0]], "officer": handler})
                self._expect(script, "PW-004", "red", again_at)
                last_receipt = self.at(self.wd(again_at.date(), 1), 10)
                self._event(script, last_receipt, "correction.supplied", {"materials": [materials[0]]})
        accepted_at = last_receipt + timedelta(minutes=rng.randint(10, 50))
        anchor_day = day0 if inject == "PW-003" else last_receipt.date()
        self._event(script, accepted_at, "application.accepted", {
            "receipt_no": None if inject == "PW-007" else f"受理-{script.case_id}", "officer": handler,
        }, recorded_lag=30 * 3600 if inject == "PW-018" else None)
        if inject == "PW-007":
            self._expect(script, "PW-007", "red", accepted_at)
        if inject == "PW-018":
            self._expect(script, "PW-018", "data", accepted_at)
        if item.on_the_spot:
            self._on_the_spot(script, accepted_at, approver, inject)
            return script
        self._handle(script, item, accepted_at, anchor_day, (handler, reviewer, approver), materials, inject)
        return script

    def _on_the_spot(self, script: Script, accepted_at: datetime, approver: str, inject: str | None) -> None:
        if inject == "PW-009":
            decided_at = self.at(self.wd(accepted_at.date(), 1), 10)
            self._expect(script, "PW-009", "red", self.end_of(accepted_at.date()))
        else:
            decided_at = accepted_at + timedelta(minutes=20)
        self._decide(script, decided_at, approver, "grant", inject)

    def _handle(self, script, item, accepted_at, anchor_day, staff, materials, inject) -> None:
        rng = self.rng
        handler, reviewer, approver = staff
        cursor = accepted_at
        if rng.random() < 0.04 and inject is None:
            withdrawn_at = self.at(self.wd(accepted_at.date(), 2), 11)
            self._event(script, withdrawn_at, "application.withdrawn", {})
            statutory = self._statutory(item, anchor_day)
            self._expect_timing(script, anchor_day, statutory, self._promised(item, anchor_day, statutory), withdrawn_at)
            script.settled_at = withdrawn_at
            return
        if inject == "PW-005":
            noticed_before = any(event["type"].endswith("correction.requested") for _, event in script.events)
            cursor = self.at(self.wd(cursor.date(), 1), 10)
            self._event(script, cursor, "correction.requested",
                        {"notice_no": f"补正-{script.case_id}-9", "materials": [materials[0]], "officer": handler})
            self._expect(script, "PW-005", "red", cursor)
            if noticed_before:  # a request during review for what no earlier notice listed (LEGAL-RULES §1)
                self._expect(script, "PW-004", "red", cursor)
            cursor += timedelta(hours=3)
            self._event(script, cursor, "correction.supplied", {"materials": [materials[0]]})
        if inject == "PW-016":
            cursor = self.at(self.wd(cursor.date(), 2), 10)
            self._event(script, cursor, "procedure.started",
                        {"kind": "extension", "working_days": 5, "notified": True, "officer": handler})
            self._expect(script, "PW-016", "red", cursor)
        if inject == "PW-017":
            cursor = self.at(self.wd(cursor.date(), 2), 10)
            self._event(script, cursor, "procedure.started",
                        {"kind": "on_site_verification", "working_days": 2, "notified": True, "officer": handler})
            self._expect(script, "PW-017", "red", cursor)
            cursor = self.at(self.wd(cursor.date(), 2), 16)
            self._event(script, cursor, "procedure.ended", {"kind": "on_site_verification"})
        if item.preliminary_review:
            forward_day = self.wd(anchor_day, 22 if inject == "PW-014" else 3)
            if inject == "PW-014":
                due = self.clock.deadline("f", anchor_day, self.settings.preliminary_review_limit, "").instant
                self._expect(script, "PW-014", "red", due)
            cursor = max(cursor, self.at(forward_day, 10))
            self._event(script, cursor, "review.forwarded", {"to_department": "GD-PROVINCE", "officer": handler})
        if item.hearing_required:
            notice_at = self.at(self.wd(cursor.date(), 1), 10)
            lead = 3 if inject == "PW-012" else 10
            held_at = self.at(notice_at.date() + timedelta(days=lead), 9.5)
            if not self.calendar.is_working_day(held_at.date()):
                held_at = self.at(self.calendar.next_working_day(held_at.date()), 9.5)
                lead = (held_at.date() - notice_at.date()).days
            self._event(script, notice_at, "hearing.notified", {"scheduled_for": held_at.isoformat()})
            if lead < self.settings.hearing_notice_days.value:
                self._expect(script, "PW-012", "red", notice_at)
            self._event(script, held_at, "hearing.held", {})
            cursor = held_at
        cursor = self.at(self.wd(cursor.date(), 1), 9.2) if cursor.date() == accepted_at.date() else cursor
        self._event(script, cursor + timedelta(minutes=5), "step.completed",
                    {"step": "handle", "officer": handler, "action": "pass"})
        self._event(script, cursor + timedelta(minutes=40), "step.completed",
                    {"step": "review", "officer": reviewer, "action": "pass"})
        decided_at = self._decision_time(script, item, anchor_day, cursor + timedelta(hours=1), inject)
        deny_ok = inject not in ("PW-010", "PW-011", "PW-015", "PW-019")
        outcome = "deny" if inject == "PW-008" or (deny_ok and rng.random() < 0.1) else "grant"
        self._event(script, decided_at - timedelta(minutes=10), "step.completed",
                    {"step": "approve", "officer": approver, "action": "pass"})
        self._decide(script, decided_at, approver, outcome, inject)

    def _decision_time(self, script: Script, item: CatalogEntry, anchor_day: date, earliest: datetime,
                       inject: str | None) -> datetime:
        """When to decide: compliant cases before any warning; injected ones where they must."""
        statutory = self._statutory(item, anchor_day)
        promised = self._promised(item, anchor_day, statutory)
        warn = self.settings.warning_working_days
        if inject == "PW-001":
            decided = self.at(self.wd(statutory.last_day, self.rng.randint(1, 3)), 10)
        elif inject == "PW-002":
            decided = self.at(self.wd(promised.last_day, 1), 10)
            statutory_warning = self.end_of(self.calendar.working_days_before(statutory.last_day, warn))
            decided = min(decided, statutory_warning - timedelta(hours=1))
        else:
            targets = [promised, statutory] if promised else [statutory]
            limit = min(self._warning_instant(t, anchor_day) or t.instant for t in targets)
            decided = max(earliest, min(earliest + timedelta(days=self.rng.uniform(0, 5)), limit - timedelta(hours=2)))
            if decided.hour >= 18 or decided.hour < 8:
                decided = decided.replace(hour=max(8, min(decided.hour, 17)))
        decided = max(decided, earliest)
        self._expect_timing(script, anchor_day, statutory, promised, decided)
        return decided

    def _statutory(self, item: CatalogEntry, anchor_day: date):
        law = self.settings.joint_decision_limit if item.joint_handling else self.settings.decision_limit
        limit = item.statutory_limit or law
        return self.clock.deadline("statutory", anchor_day, limit, "")

    def _promised(self, item: CatalogEntry, anchor_day: date, statutory):
        if item.promised_limit is None:
            return None
        promised = self.clock.deadline("promised", anchor_day, item.promised_limit, "")
        return promised if promised.instant < statutory.instant else None

    def _warning_instant(self, target, anchor_day: date) -> datetime | None:
        day = self.calendar.working_days_before(target.last_day, self.settings.warning_working_days)
        return None if day < anchor_day else self.end_of(day)

    def _expect_timing(self, script: Script, anchor_day: date, statutory, promised, decided: datetime) -> None:
        for target, yellow in ((promised, True), (statutory, False)):
            if target is None:
                continue
            warning = self._warning_instant(target, anchor_day)
            if warning is not None and decided >= warning:
                self._expect(script, "PW-002", "warning", warning, script.anchor_known)
            if decided >= target.instant:
                self._expect(script, "PW-002" if yellow else "PW-001", "yellow" if yellow else "red", target.instant,
                             script.anchor_known)

    def _decide(self, script: Script, decided_at: datetime, approver: str, outcome: str, inject: str | None) -> None:
        rng = self.rng
        item = script.item
        data = {"outcome": outcome, "officer": approver, "remedies_notified": True}
        if outcome == "deny":
            if inject == "PW-008":
                data["remedies_notified"] = False
                self._expect(script, "PW-008", "red", decided_at)
            else:
                data["reasons"] = "申请材料经审查不符合法定条件、标准"
        if inject == "PW-019":
            licence_at = decided_at - timedelta(hours=2)
            self._event(script, licence_at, "licence.issued", {"licence_no": f"证-{script.case_id}"})
            self._expect(script, "PW-019", "data", licence_at)
        self._event(script, decided_at, "decision.made", data)
        script.settled_at = decided_at
        if outcome != "grant":
            return
        if item.licence_required and inject != "PW-019":
            days = 12 if inject == "PW-010" else rng.randint(0 if item.on_the_spot else 1, 4)
            licence_at = decided_at + timedelta(minutes=30) if days == 0 else self.at(self.wd(decided_at.date(), days), 10)
            if inject == "PW-010":
                due = self.clock.deadline("l", decided_at.date(), self.settings.licence_issue_limit, "").instant
                self._expect(script, "PW-010", "red", due)
            self._event(script, licence_at, "licence.issued", {"licence_no": f"证-{script.case_id}"})
        if inject == "PW-015" or (item.fee is not None and rng.random() < 0.8):
            amount = item.fee.max_amount if item.fee else Decimal("50.00")
            if inject == "PW-015" and item.fee is not None:
                amount += Decimal("100.00")
                charged = self.at(self.wd(decided_at.date(), 1), 11)
            else:
                charged = self.at(self.wd(decided_at.date(), 1), 11)
            self._event(script, charged, "fee.charged", {"fee_code": item.fee.fee_code if item.fee else "FEE-X",
                                                          "amount": str(amount), "deposit": False})
            if inject == "PW-015":
                self._expect(script, "PW-015", "red", charged)
        period = item.publish_within or self.settings.publication_period
        if inject == "PW-011":
            due = self.clock.deadline("p", decided_at.date(), period, "").instant
            self._expect(script, "PW-011", "red", due)
        else:
            self._event(script, self.at(self.wd(decided_at.date(), 1), 15), "result.published", {"channel": "深圳政府在线"})

    def _out_of_order_pair(self, item: CatalogEntry, submitted_at: datetime) -> Iterator[Script]:
        """Two applications for a quantity-limited item; the later one is granted first."""
        first = Script(self._case_id(submitted_at), item, None)
        second = Script(self._case_id(submitted_at), item, "PW-013")
        handler, _, approver = self._officers(item)
        day = submitted_at.date()
        for offset, script in enumerate((first, second)):
            at = submitted_at + timedelta(minutes=30 * offset)
            self._event(script, at, "application.submitted", {
                "item_code": item.item_code, "department": self.department[item.item_code],
                "applicant_id": f"91440300Q{offset}",
                "channel": "window", "materials": [m.code for m in item.materials], "officer": handler})
            self._event(script, at + timedelta(minutes=10), "application.accepted",
                        {"receipt_no": f"受理-{script.case_id}", "officer": handler})
        second_grant = self.at(self.wd(day, 1), 10)
        first_grant = self.at(self.wd(day, 2), 10)
        for script, granted in ((second, second_grant), (first, first_grant)):
            self._event(script, granted - timedelta(minutes=10), "step.completed",
                        {"step": "approve", "officer": approver, "action": "pass"})
            self._decide(script, granted, approver, "grant", None)
        self._expect(second, "PW-013", "red", second_grant)
        self.busy_until[item.item_code] = first_grant
        yield first
        yield second

    # ----------------------------------------------------------------- the stream

    def events(self, cases: int | None = None, until: datetime | None = None) -> Iterator[tuple[datetime, bytes]]:
        """Raw events (JSON bytes) in time order, for the first `cases` cases or those submitted
        before `until`. The ground truth of every generated case accumulates in `ground_truth`."""
        pending: list[tuple[datetime, int, bytes]] = []
        order = itertools.count()
        for produced, script in enumerate(self.scripts()):
            start = script.events[0][0]
            if (cases is not None and produced >= cases) or (until is not None and start >= until):
                break
            while pending and pending[0][0] <= start:
                moment, _, raw = heapq.heappop(pending)
                yield moment, raw
            for moment, event in script.events:
                heapq.heappush(pending, (moment, next(order), orjson.dumps(event)))
            self.ground_truth.extend(script.expected)
        while pending:
            moment, _, raw = heapq.heappop(pending)
            yield moment, raw


