"""The deadlines of one case: when each thing is due, and why. No rules: no judgement, no alerts.

Built on the legal clock and the case's facts (LEGAL-RULES.md §1):
- acceptance, or deemed acceptance on the receipt day when no correction notice came within
  5 working days (XKF art. 32(4));
- the decision limit (XKF art. 42: 20 WD, 45 WD for joint handling, or the item's own), moved by
  one regular extension and by XKF art. 45 pauses. Irregular extensions and pauses move nothing.

The computations chain (windows → acceptance → decision deadline); each takes the previous one as
an argument so that a caller can compute each once (see `CaseView`).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import NamedTuple

from permitwatch.alerts.case import CaseState, Procedure, Receipt
from permitwatch.alerts.clock import Deadline, LegalClock, local_date
from permitwatch.models.catalog import CatalogEntry
from permitwatch.models.common import Duration, working_days
from permitwatch.models.events import STATUTORY_PAUSE_KINDS
from permitwatch.models.settings import RuleSettings


class Anchor(NamedTuple):
    """The day the decision clock starts from (受理之日), and what it rests on."""

    day: date
    deemed: bool
    evidence: tuple[str, ...]
    label: str


class ResponseWindow(NamedTuple):
    """Materials received; the agency must answer (accept, refuse, or list corrections) in time."""

    receipt: Receipt
    deadline: Deadline
    answered_at: datetime | None
    answered_by: str | None

    def missed(self, now: datetime) -> bool:
        if self.answered_at is None:
            return now >= self.deadline.instant
        return self.answered_at >= self.deadline.instant


class ExtensionCheck(NamedTuple):
    """How much of an extension the law lets count, and what is wrong with it."""

    allowed: int
    problems: tuple[str, ...]


DEEMED = "deemed accepted on receipt: no correction notice within 5 WD (XKF art. 32(4))"
COMPLETED = "accepted; complete corrected materials received (XKF art. 32(4))"
ACCEPTED = "accepted"


class CaseClock:
    """The deadlines of a case for one catalog entry, settings and legal clock."""

    def __init__(self, clock: LegalClock, settings: RuleSettings, item: CatalogEntry | None):
        self.clock = clock
        self.settings = settings
        self.item = item
        joint = bool(item and item.joint_handling)
        law = settings.joint_decision_limit if joint else settings.decision_limit
        self.decision_limit = (item.statutory_limit if item is not None else None) or law
        self.extension_limit = settings.joint_extension_limit if joint else settings.extension_limit

    # ----- acceptance -----

    def response_windows(self, case: CaseState) -> list[ResponseWindow]:
        """One window for the submission and one for the first supply after each answer, while
        the case is not yet accepted."""
        responses = [(n.time, n.event_id) for n in case.notices] if case.notices else []
        for fact in (case.accepted, case.rejected, case.withdrawn):
            if fact is not None:
                responses.append(fact)
        if case.decisions:
            responses.append((case.decisions[0].time, case.decisions[0].event_id))
        if len(responses) > 1:
            responses.sort()
        accepted_at = case.accepted.time if case.accepted else None
        windows: list[ResponseWindow] = []
        last_answer = None
        for receipt in case.receipts:
            # A supply at the acceptance's instant comes after it (procedure order).
            if accepted_at is not None and (receipt.time > accepted_at or
                                            (receipt.time == accepted_at and not receipt.first)):
                break
            if not receipt.first and (last_answer is None or last_answer > receipt.time):
                continue  # a further supply in the same round, or one no notice asked for
            answer = None
            for response in responses:
                if response[0] >= receipt.time:
                    answer = response
                    break
            deadline = self.clock.deadline(
                "correction_notice_deadline", local_date(receipt.time), self.settings.correction_notice_limit,
                "materials received; answer due (XKF art. 32(4))", (receipt.event_id,),
            )
            if answer is None:
                windows.append(ResponseWindow(receipt, deadline, None, None))
                break
            windows.append(ResponseWindow(receipt, deadline, answer[0], answer[1]))
            last_answer = answer[0]
        return windows

    @staticmethod
    def plain_acceptance(case: CaseState) -> Anchor | None:
        """The common case, without computing any window: one submission, no notice, accepted on
        a day before the fifth calendar day after receipt, which is always inside 5 working days.
        None when the full computation (`anchor`) is needed."""
        accepted = case.accepted
        if accepted is None or case.notices or len(case.receipts) != 1 or case.rejected or case.withdrawn:
            return None
        receipt_day = local_date(case.receipts[0].time)
        day = local_date(accepted.time)
        if receipt_day <= day and (day - receipt_day).days < 5 and case.receipts[0].time <= accepted.time:
            return Anchor(day, False, (accepted.event_id,), ACCEPTED)
        return None

    def anchor(self, case: CaseState, windows: list[ResponseWindow], now: datetime) -> Anchor | None:
        for window in windows:
            if window.missed(now):
                receipt = window.receipt
                return Anchor(local_date(receipt.time), True, (receipt.event_id,), DEEMED)
        accepted = case.accepted
        if accepted is None:
            return None
        last_notice = None
        for notice in case.notices:
            if notice.time < accepted.time:  # one at the acceptance's instant is a request during review
                last_notice = notice.time
        if last_notice is not None:
            completion = max(
                (r for r in case.receipts if not r.first and last_notice <= r.time < accepted.time), default=None
            )
            if completion is not None:
                return Anchor(local_date(completion.time), False, (accepted.event_id, completion.event_id), COMPLETED)
        return Anchor(local_date(accepted.time), False, (accepted.event_id,), ACCEPTED)

    @staticmethod
    def awaiting_answer(windows: list[ResponseWindow], now: datetime) -> datetime | None:
        """While unaccepted: the instant an unanswered window runs out (deemed acceptance then)."""
        for window in windows:
            if window.answered_at is None and now < window.deadline.instant:
                return window.deadline.instant
        return None

    # ----- special procedures -----

    def extension_check(self, case: CaseState, index: int, anchor: Anchor | None) -> ExtensionCheck:
        """XKF art. 42: once, approved by the head, reason told, at most 10 (joint: 15) WD,
        decided before the limit runs out. One that states no length extends by the most the
        law allows; all of a case's extensions together extend at most that much (a repeated one
        is flagged, and counts only what the earlier ones left)."""
        start = case.procedure_starts[index]
        problems = []
        earlier = [i for i, p in enumerate(case.procedure_starts[:index]) if p.kind == "extension"]
        if earlier:
            problems.append("repeated")
        if not start.approved_by:
            problems.append("no_approver")
        if not start.notified:
            problems.append("not_notified")
        limit = self.extension_limit.value
        requested = limit if start.working_days is None else start.working_days
        if requested > limit:
            problems.append("too_long")
        if anchor is not None:
            before = self.decision_deadline(case, anchor, until=start.time)
            if before is not None and start.time >= before.instant:
                problems.append("after_deadline")
        if set(problems) - {"too_long", "repeated"}:
            return ExtensionCheck(0, tuple(problems))
        left = limit - sum(self.extension_check(case, i, anchor).allowed for i in earlier)
        return ExtensionCheck(max(0, min(requested, left)), tuple(problems))

    @staticmethod
    def pause_counts(procedure: Procedure) -> bool:
        """XKF art. 45: only the listed procedures, notified in writing, stop the clock."""
        return procedure.start.kind in STATUTORY_PAUSE_KINDS and procedure.start.notified

    def _paused(self, procedure: Procedure, unit: str) -> int | None:
        """Days of `unit` a pause takes out of the period; None while it is open (the length it
        planned is what the applicant was told, not an end: LEGAL-RULES §1)."""
        if procedure.ended is None:
            return None
        return self.clock.calendar.count(local_date(procedure.start.time), local_date(procedure.ended.time), unit)

    def _apply_procedures(
        self, case: CaseState, deadline: Deadline, unit: str, anchor: Anchor | None, until: datetime | None = None
    ) -> Deadline | None:
        """Move `deadline` by the procedures begun before it runs out (and before `until`);
        `anchor` is given when extensions count (the decision limit), None otherwise."""
        if not case.procedure_starts:
            return deadline
        for index, procedure in enumerate(case.procedures()):
            start = procedure.start
            if until is not None and start.time >= until:
                break
            if start.time >= deadline.instant:
                continue
            if start.kind == "extension":
                allowed = self.extension_check(case, index, anchor).allowed if anchor else 0
                if allowed:
                    deadline = self.clock.extend(deadline, working_days(allowed), "extension (XKF art. 42)",
                                                 start.event_id)
            elif self.pause_counts(procedure):
                paused = self._paused(procedure, unit)
                if paused is None:
                    return None
                if paused:
                    deadline = self.clock.extend(deadline, Duration(value=paused, unit=unit),
                                                 f"{start.kind} pause (XKF art. 45)", start.event_id)
        return deadline

    # ----- the deadlines -----

    def decision_deadline(self, case: CaseState, anchor: Anchor, until: datetime | None = None) -> Deadline | None:
        """The statutory decision deadline; None while an open-ended pause runs."""
        limit = self.decision_limit
        deadline = self.clock.deadline("decision_deadline", anchor.day, limit, f"{anchor.label}; XKF art. 42",
                                       anchor.evidence)
        return self._apply_procedures(case, deadline, limit.unit, anchor, until)

    def promised_deadline(self, case: CaseState, anchor: Anchor | None) -> Deadline | None:
        """The agency's own promise (承诺时限): from the acceptance event, else the catalog. An item
        the catalog does not know is judged with the law's defaults and no promise (EVENTS.md)."""
        if self.item is None:
            return None
        if case.promised_day is not None and case.accepted is not None:
            deadline = self.clock.on_day("promised_deadline", case.promised_day, "promised on acceptance",
                                         (case.accepted.event_id,))
            unit = "working_days"
        elif self.item is not None and self.item.promised_limit is not None and anchor is not None:
            unit = self.item.promised_limit.unit
            deadline = self.clock.deadline("promised_deadline", anchor.day, self.item.promised_limit,
                                           f"{anchor.label}; promised limit", anchor.evidence)
        else:
            return None
        return self._apply_procedures(case, deadline, unit, None)

    def after(self, name: str, moment: datetime, period: Duration, label: str, source: str) -> Deadline:
        """A plain deadline: `period` after the day of `moment`."""
        return self.clock.deadline(name, local_date(moment), period, label, (source,))

    def warning_day(self, target: Deadline, remaining: int) -> date:
        """The day after which only `remaining` working days are left before `target`."""
        return self.clock.calendar.working_days_before(target.last_day, remaining)
