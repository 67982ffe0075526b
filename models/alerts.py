"""Alerts out (EVENTS.md): one record per emission; a retraction is a new record, same `alert_id`."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import Field

from permitwatch.models.common import RULE_ID_PATTERN, SCHEMA_VERSION, Contract
from permitwatch.models.settings import Signal

RuleId = Annotated[str, Field(pattern=f"^{RULE_ID_PATTERN}$")]


class Officers(Contract):
    """The people the events name, per SZ-XK art. 4: handler 承办人, reviewer 审核人, approver 批准人."""

    handler: str | None = None
    reviewer: str | None = None
    approver: str | None = None


class LegalBasis(Contract):
    cite: str = Field(description="e.g. 'SZ-XK art. 8(13)' or 'XKF art. 42'")
    text_zh: str = Field(description="The clause in Chinese, as published")


class DeadlineInfo(Contract):
    """A computed legal deadline and how it was reached."""

    name: str = Field(description="e.g. decision_deadline, licence_deadline")
    last_day: date = Field(description="The last legal day (Asia/Shanghai)")
    instant: datetime = Field(description="The exact instant the period ends")
    calendar_version: str
    provisional: bool = Field(description="True when a year on the way has no published calendar")
    basis: list[str] = Field(description="The steps of the computation, in order")


class Message(Contract):
    zh: str
    en: str


class Retraction(Contract):
    reason: Message
    evidence: list[str] = Field(description="Ids of the events that disprove the alert")


class Alert(Contract):
    schema_version: Literal["1.0"] = SCHEMA_VERSION
    alert_id: str = Field(description="Deterministic from case, rule and the fact proved")
    rule: RuleId
    signal: Signal
    status: Literal["active", "retracted"]
    case_id: str
    item_code: str | None = None
    department: str | None = None
    officers: Officers = Officers()
    legal_basis: list[LegalBasis]
    fact: str = Field(description="The fact the alert proves, machine-readable (part of its id)")
    deadline: DeadlineInfo | None = None
    calendar_version: str | None = None
    provisional: bool = False
    evidence: list[str] = Field(description="Ids of the events that prove the alert")
    detected_at: datetime = Field(
        description="When the fact became provable in legal time: the deadline instant for a "
        "deadline rule, the event's time for an event rule, the disproving event's time for a "
        "retraction. Independent of when the monitor happened to process it."
    )
    message: Message
    retraction: Retraction | None = None
