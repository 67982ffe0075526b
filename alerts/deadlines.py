"""The deadlines of one case: when each thing is due, and why. No rules: no judgement, no alerts.

Built on the legal clock and the case's facts (LEGAL-RULES.md §1):
- acceptance, or deemed acceptance on the receipt day when no correction notice came within
  5 working days (XKF art. 32(4));
- the decision limit (XKF art. 42: 20 WD, 45 WD for joint handling, or the item's own), moved by
  one regular extension and by XKF art. 45 pauses. Irregular extensions and pauses move nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from alerts.case import CaseState, Procedure, Receipt
from alerts.clock import Deadline, LegalClock, local_date
from models.catalog import CatalogEntry
from models.common import Duration, working_days
from models.events import STATUTORY_PAUSE_KINDS
from models.settings import RuleSettings


@dataclass(frozen=True, slots=True)
class Anchor:
    """The day the decision clock starts from (受理之日)."""

    day: date
    deemed: bool
    evidence: tuple[str, ...]
    basis: str


@dataclass(frozen=True, slots=True)
class ResponseWindow:
    """Materials received; the agency must answer (accept, refuse, or list corrections) in time."""

    receipt: Receipt
    deadline: Deadline
    answered_at: datetime | None
    answered_by: str | None

    def missed(self, now: datetime) -> bool:
        if self.answered_at is None:
            return now >= self.deadline.instant
        return self.answered_at >= self.deadline.instant


@dataclass(frozen=True, slots=True)
class ExtensionCheck:
    """How much of an extension the law lets count, and what is wrong with it."""

    allowed: int
    problems: tuple[str, ...]


class CaseClock:
    """The deadlines of a case for one catalog entry, settings and legal clock."""

    def __init__(self, clock: LegalClock, settings: RuleSettings, item: CatalogEntry | None):
        self.clock = clock
        self.settings = settings
        self.item = item

    # ----- limits -----

    @property
    def joint(self) -> bool:
        return bool(self.item and self.item.joint_handling)

    @property
    def decision_limit(self) -> Duration:
        if self.item is not None and "statutory_limit" in self.item.model_fields_set:
            return self.item.statutory_limit
        return self.settings.joint_decision_limit if self.joint else self.settings.decision_limit

    @property
    def extension_limit(self) -> Duration:
        return self.settings.joint_extension_limit if self.joint else self.settings.extension_limit

    # ----- acceptance -----

    def response_windows(self, case: CaseState) -> list[ResponseWindow]:
        """One window for the submission and one for the first supply after each notice, while
        the case is not yet accepted."""
        responses = sorted(
            [(n.time, n.event_id) for n in case.notices]
            + [(f.time, f.event_id) for f in (case.accepted, case.rejected, case.withdrawn) if f]
            + [(d.time, d.event_id) for d in case.decisions[:1]]
        )
        accepted_at = case.accepted.time if case.accepted else None
        windows, last_response = [], None
        for receipt in case.receipts:
            if accepted_at is not None and receipt.time > accepted_at:
                break
            if not receipt.first and (last_response is None or last_response > receipt.time):
                continue  # a further supply in the same round, or one no notice asked for
            answer = next((r for r in responses if r[0] >= receipt.time), None)
            trigger = local_date(receipt.time)
            deadline = self.clock.deadline(
                "correction_notice_deadline",
                trigger,
                self.settings.correction_notice_limit,
                f"materials received ({receipt.event_id}); answer due (XKF art. 32(4))",
            )
            windows.append(ResponseWindow(receipt, deadline, answer[0] if answer else None, answer[1] if answer else None))
            last_response = answer[0] if answer else None
            if answer is None:
                break
        return windows

    def anchor(self, case: CaseState, now: datetime) -> Anchor | None:
        for window in self.response_windows(case):
            if window.missed(now):
                receipt = window.receipt
                return Anchor(
                    local_date(receipt.time),
                    True,
                    (receipt.event_id,),
                    f"deemed accepted on receipt of materials ({receipt.event_id}), no correction "
                    f"notice by {window.deadline.last_day} (XKF art. 32(4))",
                )
        if case.accepted is None:
            return None
        accepted = case.accepted
        last_notice = max((n.time for n in case.notices if n.time <= accepted.time), default=None)
        completion = None
        if last_notice is not None:
            completion = max(
                (r for r in case.receipts if not r.first and last_notice <= r.time <= accepted.time),
                default=None,
            )
        if completion is not None:
            return Anchor(
                local_date(completion.time),
                False,
                (accepted.event_id, completion.event_id),
                f"accepted ({accepted.event_id}); complete corrected materials received "
                f"({completion.event_id}) (XKF art. 32(4))",
            )
        return Anchor(local_date(accepted.time), False, (accepted.event_id,), f"accepted ({accepted.event_id})")

    # ----- special procedures -----

    def extension_check(self, case: CaseState, start_index: int) -> ExtensionCheck:
        """XKF art. 42: once, approved by the head, reason told, at most 10 (joint: 15) WD,
        decided before the limit runs out."""
        start = case.procedure_starts[start_index]
        problems = []
        if any(p.kind == "extension" for p in case.procedure_starts[:start_index]):
            problems.append("repeated")
        if not start.approved_by:
            problems.append("no_approver")
        if not start.notified:
            problems.append("not_notified")
        requested = start.working_days or 0
        limit = self.extension_limit.value
        if requested > limit:
            problems.append("too_long")
        base = self.decision_deadline(case, start.time, until=start.time)
        if base is not None and start.time >= base.instant:
            problems.append("after_deadline")
        allowed = 0 if set(problems) - {"too_long"} else min(requested, limit)
        return ExtensionCheck(allowed, tuple(problems))

    @staticmethod
    def pause_counts(procedure: Procedure) -> bool:
        """XKF art. 45: only the listed procedures, notified in writing, stop the clock."""
        return procedure.start.kind in STATUTORY_PAUSE_KINDS and procedure.start.notified

    def _paused(self, procedure: Procedure, unit: str) -> int | None:
        """Days of `unit` a pause takes out of the period; None while open with no planned end."""
        start_day = local_date(procedure.start.time)
        if procedure.ended is not None:
            return self.clock.calendar.count(start_day, local_date(procedure.ended.time), unit)
        if procedure.start.working_days is None:
            return None
        planned_end = self.clock.calendar.period_end(start_day, working_days(procedure.start.working_days)).last_day
        return self.clock.calendar.count(start_day, planned_end, unit)

    def _apply_procedures(
        self, case: CaseState, deadline: Deadline, unit: str, extensions: bool, until: datetime | None = None
    ) -> Deadline | None:
        """Move `deadline` by the procedures begun before it runs out (and before `until`)."""
        for index, procedure in enumerate(case.procedures()):
            start = procedure.start
            if until is not None and start.time >= until:
                break
            if start.time >= deadline.instant:
                continue
            if start.kind == "extension":
                if not extensions:
                    continue
                allowed = self.extension_check(case, index).allowed
                if allowed:
                    deadline = self.clock.extend(
                        deadline, working_days(allowed), f"extension ({start.event_id}, XKF art. 42)"
                    )
            elif self.pause_counts(procedure):
                paused = self._paused(procedure, unit)
                if paused is None:
                    return None
                if paused:
                    deadline = self.clock.extend(
                        deadline,
                        Duration(value=paused, unit=unit),
                        f"{start.kind} pause ({start.event_id}, XKF art. 45)",
                    )
        return deadline

    # ----- the deadlines -----

    def decision_deadline(self, case: CaseState, now: datetime, until: datetime | None = None) -> Deadline | None:
        """The statutory decision deadline; None before acceptance or while an open-ended pause runs."""
        anchor = self.anchor(case, now)
        if anchor is None:
            return None
        limit = self.decision_limit
        deadline = self.clock.deadline("decision_deadline", anchor.day, limit, f"{anchor.basis}; XKF art. 42")
        return self._apply_procedures(case, deadline, limit.unit, extensions=True, until=until)

    def promised_deadline(self, case: CaseState, now: datetime) -> Deadline | None:
        """The agency's own promise (承诺时限): from the acceptance event, else the catalog."""
        if case.promised_day is not None and case.accepted is not None:
            day = case.promised_day
            deadline = Deadline(
                "promised_deadline",
                day,
                self.clock.end_of(day),
                self.clock.version,
                not self.clock.calendar.is_published(day.year),
                (f"promised on acceptance ({case.accepted.event_id}): {day}",),
            )
            unit = "working_days"
        elif self.item is not None and self.item.promised_limit is not None:
            anchor = self.anchor(case, now)
            if anchor is None:
                return None
            unit = self.item.promised_limit.unit
            deadline = self.clock.deadline(
                "promised_deadline", anchor.day, self.item.promised_limit, f"{anchor.basis}; promised limit"
            )
        else:
            return None
        return self._apply_procedures(case, deadline, unit, extensions=False)

    def after(self, name: str, moment: datetime, period: Duration, basis: str) -> Deadline:
        """A plain deadline: `period` after the day of `moment`."""
        return self.clock.deadline(name, local_date(moment), period, basis)

    def same_day(self, name: str, moment: datetime, basis: str) -> Deadline:
        day = local_date(moment)
        return Deadline(name, day, self.clock.end_of(day), self.clock.version, False, (f"{basis}: {day}",))

    def warning_day(self, target: Deadline, remaining: int) -> date:
        """The day after which only `remaining` working days are left before `target`."""
        return self.clock.calendar.working_days_before(target.last_day, remaining)
