"""What the HTTP API returns (beyond the alert and referral records themselves)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

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


class IngestReport(Contract):
    accepted: int
    duplicates: int
    rejected: list[dict[str, Any]] = Field(description="index, category and reason of each refused input")
    warnings: list[str] = Field(default=[], description="What the sender should know, e.g. that the events are "
                                                        "history, judged at the monitor's clock")


class ReferenceChange(Contract):
    """What replacing the catalog or adding a calendar did."""

    applied: Literal["catalog", "calendar"]
    alert_records: int = Field(description="Alert records the re-judging of open cases emitted")
    retracted: int = Field(description="Of them, retractions")


class CalendarView(Contract):
    version: str
    published_years: list[int]
    overrides: list[dict[str, Any]]
    days: list[dict[str, str]] = Field(default=[], description="Each day of the requested year and its kind")
