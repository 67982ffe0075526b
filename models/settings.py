"""Rule parameters: one configuration file (JSON or YAML) with documented defaults.

Defaults are the law's own numbers where a law sets one (cited next to each field); the
thresholds practice leaves open (warning window, back-dating lag, retention) are set to values a
supervision centre can start with. Item-level overrides come from the catalog.
"""

from __future__ import annotations

import re
from datetime import time
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from permitwatch.models.common import NOT_A_TRUTH_VALUE, RULE_ID_PATTERN, Contract, Duration, working_days
from permitwatch.models.files import load_structured

Signal = Literal["warning", "yellow", "red", "data"]

_HHMM = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")


class RuleSettings(Contract):
    end_of_day: Annotated[str, Field(description="When a legal day ends (HH:MM, Asia/Shanghai). "
                                     "24:00 by the counting rule (Civil Code art. 203 by analogy); "
                                     "set e.g. 17:30 to end periods at close of office.")] = "24:00"
    decision_limit: Duration = Field(working_days(20), description="XKF art. 42 ¶1")
    joint_decision_limit: Duration = Field(working_days(45), description="XKF art. 42 ¶2 (统一/联合/集中办理)")
    extension_limit: Duration = Field(working_days(10), description="XKF art. 42 ¶1, once, agency head approves")
    joint_extension_limit: Duration = Field(working_days(15), description="XKF art. 42 ¶2")
    correction_notice_limit: Duration = Field(working_days(5), description="XKF art. 32(4)")
    licence_issue_limit: Duration = Field(working_days(10), description="XKF art. 44")
    publication_period: Duration = Field(
        working_days(20),
        description="PW-011 default when the item sets no publish_within: 20 working days, as "
        "《政府信息公开条例》 art. 26 sets for proactively disclosed information",
    )
    preliminary_review_limit: Duration = Field(working_days(20), description="XKF art. 43")
    hearing_hold_limit: Duration = Field(working_days(20), description="XKF art. 47")
    hearing_notice_days: Duration = Field(
        Duration(value=7, unit="calendar_days"), description="XKF art. 48(1): notify 7 days before"
    )
    warning_working_days: Annotated[int, Field(ge=0, le=60, description=(
        "PW-002 预警 fires when this many working days remain before the promised limit "
        "(or the statutory one when no promise is known)")), NOT_A_TRUTH_VALUE] = 3
    backdating_lag_hours: Annotated[float, Field(gt=0, description=(
        "PW-018: an event recorded this much later than its claimed time is suspect"))] = 24.0
    closed_case_retention_days: Annotated[int, Field(ge=0, description=(
        "A closed case is kept this many days after its last timer, so a late event can still "
        "retract an alert, then dropped")), NOT_A_TRUTH_VALUE] = 30
    idle_case_retention_days: Annotated[int, Field(ge=1, description=(
        "A case that never closes is forgotten this many days after its last event, once no "
        "deadline of it is pending")), NOT_A_TRUTH_VALUE] = 400
    aggravation_window_days: Annotated[int, Field(ge=1, description="SZ-XK art. 12(1): one year"),
                                       NOT_A_TRUTH_VALUE] = 365
    signals: dict[str, Signal] = Field(
        default_factory=dict, description="Per-rule signal override, e.g. {'PW-006': 'yellow'}"
    )
    disabled_rules: list[str] = Field(default_factory=list, description="Rule ids not evaluated")

    @field_validator("end_of_day")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        match = _HHMM.match(value)
        if not match or (match.group(1) == "24" and match.group(2) != "00") or value == "00:00":
            raise ValueError("end_of_day must be HH:MM between 00:01 and 24:00")
        return value

    @field_validator("signals", "disabled_rules")
    @classmethod
    def _rule_ids(cls, value):
        for rule in value:
            if not re.fullmatch(RULE_ID_PATTERN, rule):
                raise ValueError(f"{rule!r} is not a rule id (PW-001 … PW-019)")
        return value

    @property
    def end_of_day_time(self) -> time | None:
        """The cut-off as a time of day, or None for 24:00 (the start of the next day)."""
        if self.end_of_day == "24:00":
            return None
        hours, minutes = self.end_of_day.split(":")
        return time(int(hours), int(minutes))


def load_settings(path: str | Path | None) -> RuleSettings:
    return RuleSettings() if path is None else load_structured(path, RuleSettings)
