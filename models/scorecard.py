"""Scorecards (绩效评估): how departments and items performed over a period."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from permitwatch.models.common import Contract


class ScorecardRow(Contract):
    department: str
    item_code: str = Field(description="An item code, or '*' for the whole department")
    period_from: datetime
    period_to: datetime
    accepted: int = Field(description="Cases accepted (or deemed accepted) in the period")
    decided: int = Field(description="Cases decided in the period")
    on_time_statutory: int = Field(description="Of those decided, before the statutory deadline")
    on_time_statutory_rate: float | None
    with_promise: int = Field(description="Of those decided, cases with a promised limit")
    on_time_promised: int
    on_time_promised_rate: float | None
    median_working_days: float | None = Field(description="Working days from acceptance to decision")
    p90_working_days: int | None = Field(description="Nearest-rank 90th percentile")
    alerts: dict[str, int] = Field(description="Active alerts detected in the period, by 'rule/signal'")
    referrals: int = Field(description="Cases with a red alert detected in the period")
