"""The state of one licensing case (办件): the facts its events established, kept in event-time terms.

Every fact records when it happened and which event proves it, so the rules can judge the case "as
of" any moment, whatever order the events arrived in. Lists are kept sorted by event time;
"first X" facts keep the earliest. Applying the same set of events in any order gives the same state.
"""

from __future__ import annotations

import hashlib
from bisect import insort
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import NamedTuple

from permitwatch.models import events as ev
from permitwatch.models.alerts import Alert


class Fact(NamedTuple):
    time: datetime
    event_id: str


class Receipt(NamedTuple):
    """Materials received: the submission (`first=True`) or a correction supply."""

    time: datetime
    event_id: str
    materials: frozenset[str]
    first: bool


class Notice(NamedTuple):
    """A correction notice (补正告知) and the materials it asks for."""

    time: datetime
    event_id: str
    materials: frozenset[str]


class Decision(NamedTuple):
    time: datetime
    event_id: str
    outcome: str
    reasons_given: bool
    remedies_notified: bool


class Fee(NamedTuple):
    time: datetime
    event_id: str
    fee_code: str | None
    amount: Decimal
    deposit: bool


class Officer(NamedTuple):
    """The person last named in a role (by event time), and the event that first named them."""

    officer: str
    time: datetime
    event_id: str
    """The latest event naming them: which naming is latest."""
    first_time: datetime
    first_event_id: str
    """The earliest event naming them since they took the role: the evidence a referral cites,
    stable while the same person stays in the role."""


class ProcedureStart(NamedTuple):
    """A special procedure (特别程序) begun: an extension or a pause of the clock."""

    time: datetime
    event_id: str
    kind: str
    approved_by: str | None
    notified: bool
    working_days: int | None


class ProcedureEnd(NamedTuple):
    time: datetime
    event_id: str
    kind: str


class Procedure(NamedTuple):
    start: ProcedureStart
    ended: ProcedureEnd | None


def hash_applicant(applicant_id: str) -> str:
    """Applicant identities never leave the monitor; the hashed id is enough to group cases."""
    return hashlib.blake2b(applicant_id.encode(), digest_size=8).hexdigest()


def _earliest(current: Fact | None, time: datetime, event_id: str) -> Fact:
    if current is None or time < current.time or (time == current.time and event_id < current.event_id):
        return Fact(time, event_id)
    return current


def _sorted_add(items: list | tuple, item) -> list:
    """Insert into a time-sorted list; an empty case field is the shared `()` until first use."""
    if not items:
        return [item]
    insort(items, item)
    return items


@dataclass(slots=True)
class CaseState:
    """Compact by design (a few hundred bytes per open case): collections start as the shared
    empty tuple and become lists on first use."""

    case_id: str
    item_code: str | None = None
    department: str | None = None
    applicant: str | None = None
    submitted: Fact | None = None
    receipts: list[Receipt] | tuple = ()
    notices: list[Notice] | tuple = ()
    accepted: Fact | None = None
    promised_day: date | None = None
    rejected: Fact | None = None
    withdrawn: Fact | None = None
    closure: Fact | None = None
    """The event that ended the case: withdrawal, non-acceptance, or the first decision."""
    procedure_starts: list[ProcedureStart] | tuple = ()
    procedure_ends: list[ProcedureEnd] | tuple = ()
    forwarded: Fact | None = None
    hearing_requested: Fact | None = None
    hearing_held: Fact | None = None
    decisions: list[Decision] | tuple = ()
    licence: Fact | None = None
    published: Fact | None = None
    fees: list[Fee] | tuple = ()
    handler: Officer | None = None
    reviewer: Officer | None = None
    approver: Officer | None = None
    seen: dict[int, int] = field(default_factory=dict)
    """`event_key` → `content_digest` of every event applied (duplicates and conflicts)."""
    last_time: datetime | None = None
    last_step: int = 0
    """The procedure step (`PROCEDURE_STEP`) of the latest event at `last_time`."""
    alerts: dict[str, Alert] | None = None
    """Active alerts of the rules that judge the case's state, by alert id (for retraction)."""
    referable: bool = False
    """A red alert was raised: the case has a referral, which follows the case's changes."""
    dues: dict[str, datetime] | None = None
    """When each deadline rule must look at the case again, by rule id."""
    expires: datetime | None = None
    """When the case may be forgotten, once no deadline of it is pending."""

    # ----- derived views the rules share -----

    @property
    def decision(self) -> Decision | None:
        return self.decisions[0] if self.decisions else None

    @property
    def grant(self) -> Decision | None:
        for decision in self.decisions:
            if decision.outcome == "grant":
                return decision
        return None

    @property
    def grant_in_force(self) -> Decision | None:
        """The grant, unless the application had already been withdrawn or refused at intake: a
        grant after that is an impossible sequence (PW-019), not a licence to issue or publish."""
        grant = self.grant
        if grant is None:
            return None
        for end in (self.withdrawn, self.rejected):
            if end is not None and end.time < grant.time:
                return None
        return grant

    @property
    def closed_at(self) -> datetime | None:
        closure = self.closure
        return closure.time if closure else None

    def procedures(self) -> list[Procedure]:
        """Starts paired with their ends: each end closes the earliest open start of its kind
        before it, so starts and ends arriving in any order pair the same way."""
        open_ends: dict[int, ProcedureEnd] = {}
        for end in self.procedure_ends:
            for index, start in enumerate(self.procedure_starts):
                if index not in open_ends and start.kind == end.kind and start.time <= end.time:
                    open_ends[index] = end
                    break
        return [Procedure(start, open_ends.get(i)) for i, start in enumerate(self.procedure_starts)]

    def before_last(self, event: ev.CloudEvent) -> bool:
        """Does `event` come before the latest one applied (by time, then procedure step)?"""
        last = self.last_time
        return last is not None and (event.time < last or (event.time == last and
                                                            PROCEDURE_STEP[type(event)] < self.last_step))

    def officer(self, role: str) -> str | None:
        known = getattr(self, role)
        return known.officer if known else None

    def materials_in_file(self, before: datetime) -> frozenset[str]:
        """Every material the applicant had provided before `before`."""
        held: set[str] = set()
        for receipt in self.receipts:
            if receipt.time >= before:
                break
            held |= receipt.materials
        return frozenset(held)

    # ----- applying an event -----

    def apply(self, event: ev.CloudEvent) -> None:
        """Record what `event` establishes. Dedup is the caller's job (see `seen`)."""
        step = PROCEDURE_STEP[type(event)]
        if self.last_time is None or event.time > self.last_time:
            self.last_time, self.last_step = event.time, step
        elif event.time == self.last_time and step > self.last_step:
            self.last_step = step
        if self.item_code is None:
            data = event.data
            self.item_code = data.item_code
            self.department = self.department or data.department
        _APPLY[type(event)](self, event)

    def _note_officer(self, role: str, officer: str | None, event: ev.CloudEvent) -> None:
        """The latest person (in event time) known in each role."""
        if not officer:
            return
        known = getattr(self, role)
        time, event_id = event.time, event.id
        if known is not None and known.officer == officer:
            if (time, event_id) < (known.first_time, known.first_event_id):
                known = known._replace(first_time=time, first_event_id=event_id)
            if (time, event_id) > (known.time, known.event_id):
                known = known._replace(time=time, event_id=event_id)
            setattr(self, role, known)
        elif known is None or time > known.time or (time == known.time and event_id >= known.event_id):
            setattr(self, role, Officer(officer, time, event_id, time, event_id))

    def _close(self) -> None:
        ends = [f for f in (self.withdrawn, self.rejected) if f is not None]
        if self.decisions:
            ends.append(Fact(self.decisions[0].time, self.decisions[0].event_id))
        self.closure = min(ends)


def _submitted(case: CaseState, event: ev.ApplicationSubmitted) -> None:
    data = event.data
    # The submission defines the case: its item and department win over other events' hints.
    case.item_code, case.department = data.item_code, data.department
    case.applicant = hash_applicant(data.applicant_id)
    case.submitted = _earliest(case.submitted, event.time, event.id)
    case.receipts = _sorted_add(case.receipts, Receipt(event.time, event.id, frozenset(data.materials), True))
    case._note_officer("handler", data.officer, event)


def _accepted(case: CaseState, event: ev.ApplicationAccepted) -> None:
    case.accepted = _earliest(case.accepted, event.time, event.id)
    if event.data.promised_deadline is not None and case.accepted.event_id == event.id:
        case.promised_day = event.data.promised_deadline
    case._note_officer("handler", event.data.officer, event)


def _rejected(case: CaseState, event: ev.ApplicationRejected) -> None:
    case.rejected = _earliest(case.rejected, event.time, event.id)
    case._close()
    case._note_officer("handler", event.data.officer, event)


def _correction_requested(case: CaseState, event: ev.CorrectionRequested) -> None:
    case.notices = _sorted_add(case.notices, Notice(event.time, event.id, frozenset(event.data.materials)))
    case._note_officer("handler", event.data.officer, event)


def _correction_supplied(case: CaseState, event: ev.CorrectionSupplied) -> None:
    case.receipts = _sorted_add(case.receipts, Receipt(event.time, event.id, frozenset(event.data.materials), False))


def _procedure_started(case: CaseState, event: ev.ProcedureStarted) -> None:
    data = event.data
    start = ProcedureStart(event.time, event.id, data.kind, data.approved_by or None, data.notified, data.working_days)
    case.procedure_starts = _sorted_add(case.procedure_starts, start)


def _procedure_ended(case: CaseState, event: ev.ProcedureEnded) -> None:
    case.procedure_ends = _sorted_add(case.procedure_ends, ProcedureEnd(event.time, event.id, event.data.kind))


_ROLES = {"handle": "handler", "review": "reviewer", "approve": "approver"}


def _step_completed(case: CaseState, event: ev.StepCompleted) -> None:
    case._note_officer(_ROLES[event.data.step], event.data.officer, event)


def _review_forwarded(case: CaseState, event: ev.ReviewForwarded) -> None:
    case.forwarded = _earliest(case.forwarded, event.time, event.id)


def _hearing_requested(case: CaseState, event: ev.HearingRequested) -> None:
    case.hearing_requested = _earliest(case.hearing_requested, event.time, event.id)


def _hearing_held(case: CaseState, event: ev.HearingHeld) -> None:
    case.hearing_held = _earliest(case.hearing_held, event.time, event.id)


def _decision_made(case: CaseState, event: ev.DecisionMade) -> None:
    data = event.data
    reasons_given = bool(data.reasons and data.reasons.strip())
    case.decisions = _sorted_add(case.decisions, Decision(event.time, event.id, data.outcome, reasons_given,
                                                          data.remedies_notified))
    case._close()
    case._note_officer("approver", data.officer, event)


def _licence_issued(case: CaseState, event: ev.LicenceIssued) -> None:
    case.licence = _earliest(case.licence, event.time, event.id)


def _result_published(case: CaseState, event: ev.ResultPublished) -> None:
    case.published = _earliest(case.published, event.time, event.id)


def _fee_charged(case: CaseState, event: ev.FeeCharged) -> None:
    data = event.data
    case.fees = _sorted_add(case.fees, Fee(event.time, event.id, data.fee_code, data.amount, data.deposit))


def _withdrawn(case: CaseState, event: ev.ApplicationWithdrawn) -> None:
    case.withdrawn = _earliest(case.withdrawn, event.time, event.id)
    case._close()


PROCEDURE_STEP: dict[type, int] = {
    ev.ApplicationSubmitted: 0,
    ev.ApplicationAccepted: 1, ev.ApplicationRejected: 1,
    ev.CorrectionRequested: 2, ev.CorrectionSupplied: 2,
    ev.ProcedureStarted: 3, ev.ProcedureEnded: 3, ev.StepCompleted: 3, ev.ReviewForwarded: 3,
    ev.HearingRequested: 3, ev.HearingNotified: 3, ev.HearingHeld: 3,
    ev.DecisionMade: 4, ev.ApplicationWithdrawn: 4,
    ev.LicenceIssued: 5,
    ev.ResultPublished: 6, ev.FeeCharged: 6,
}
"""Where each event stands in the licensing procedure: two events of a case at the same instant are
in this order, whatever order they arrived in (EVENTS.md, ties)."""


def _nothing(case: CaseState, event: ev.CloudEvent) -> None:
    """Events judged on their own (hearing notices) leave no fact behind."""


_APPLY = {
    ev.ApplicationSubmitted: _submitted,
    ev.ApplicationAccepted: _accepted,
    ev.ApplicationRejected: _rejected,
    ev.CorrectionRequested: _correction_requested,
    ev.CorrectionSupplied: _correction_supplied,
    ev.ProcedureStarted: _procedure_started,
    ev.ProcedureEnded: _procedure_ended,
    ev.StepCompleted: _step_completed,
    ev.ReviewForwarded: _review_forwarded,
    ev.HearingRequested: _hearing_requested,
    ev.HearingNotified: _nothing,
    ev.HearingHeld: _hearing_held,
    ev.DecisionMade: _decision_made,
    ev.LicenceIssued: _licence_issued,
    ev.ResultPublished: _result_published,
    ev.FeeCharged: _fee_charged,
    ev.ApplicationWithdrawn: _withdrawn,
}
