"""What the HTTP API returns (beyond the alert and referral records themselves)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field

from permitwatch.models.alerts import Alert, DeadlineInfo
from permitwatch.models.common import Contract
from permitwatch.models.referrals import Referral


class OperatorState(Contract):
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    assigned_to: str | None = None
    assigned_by: str | None = None
    assigned_at: datetime | None = None
    dismissed_by: str | None = None
    dismissed_at: datetime | None = None
    dismissed_reason: str | None = None


class AlertView(Contract):
    seq: int = Field(description="Position of this record in the alert stream (SSE id, cursor)")
    emitted_at: datetime = Field(description="When the monitor stored this record (wall clock)")
    alert: Alert
    operator: OperatorState = OperatorState()


class AlertPage(Contract):
    items: list[AlertView]
    next_cursor: int | None = Field(description="Pass as `cursor` for the next page; null at the end")


class ActionRecord(Contract):
    seq: int
    target_kind: Literal["alert", "referral"]
    target_id: str
    action: str
    actor: str
    at: datetime
    reason: str | None = None
    assignee: str | None = None


class TimelineEvent(Contract):
    id: str
    type: str
    time: datetime
    recordedtime: datetime | None = None
    received_at: datetime
    data: dict[str, Any] = Field(description="The event's data; applicant identities are replaced by a hash")


class CaseTimeline(Contract):
    case_id: str
    item_code: str | None
    item_name: str | None
    department: str | None
    applicant: str | None = Field(description="Hash of the applicant id; the id itself is never shown")
    status: Literal["open", "closed"]
    clock: datetime | None = Field(description="The monitor's clock the deadlines are computed at")
    events: list[TimelineEvent]
    deadlines: list[DeadlineInfo]
    alerts: list[AlertView]
    referral: Referral | None = None


class ReferralPage(Contract):
    items: list[Referral]
    next_cursor: int | None


class Rejection(Contract):
    index: int = Field(description="Where the input was: its position in the batch (from 0), or a file's line")
    category: str = Field(description="The dead-letter category (docs/contract.md)")
    reason: str = Field(description="What is wrong, naming the field")
    origin: str | None = Field(None, description="The file and line or row, when the input came from a file")


class IngestReport(Contract):
    """What became of a batch of inputs: the one report of every way in (POST /events, `send`,
    `import` on either runtime, replay), each adding its own context."""

    model_config = ConfigDict(frozen=False)

    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = Field(default_factory=list, description="Each refused input and why")
    warnings: list[str] = Field(default_factory=list, description=(
        "What the sender should know, e.g. that the events are history, judged at the monitor's clock"))

    def merge(self, other: IngestReport, first_index: int = 0) -> None:
        """Add `other`, a later batch whose first input is at `first_index` of this report's."""
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.rejected += [r.model_copy(update={"index": r.index + first_index}) for r in other.rejected]
        self.warnings += [w for w in other.warnings if w not in self.warnings]

    def summary(self) -> str:
        return f"accepted {self.accepted}, duplicates {self.duplicates}, rejected {len(self.rejected)}"


class HistoryReport(IngestReport):
    """What `permitwatch import` did with a history file: the events read, and their period."""

    events: int = 0
    first: datetime | None = None
    last: datetime | None = None


class ReferenceChange(Contract):
    """What replacing the catalog or adding a calendar did."""

    applied: Literal["catalog", "calendar"]
    alert_records: int = Field(description="Alert records the re-judging of open cases emitted (on Kafka 0: the "
                                           "workers re-judge, and their alerts arrive on the topics)")
    retracted: int = Field(description="Of them, retractions")

    @classmethod
    def of(cls, kind: str, alerts: list[Alert]) -> ReferenceChange:
        return cls(applied=kind, alert_records=len(alerts), retracted=sum(1 for a in alerts if a.status == "retracted"))


class CalendarView(Contract):
    version: str
    published_years: list[int]
    overrides: list[dict[str, Any]]
    days: list[dict[str, str]] = Field(default=[], description="Each day of the requested year and its kind")
