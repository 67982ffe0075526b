"""Building blocks shared by every schema: strict base models, times, durations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

SCHEMA_VERSION = "1.0"

# Plausible range for a licensing event. A year-9999 timestamp would otherwise move a replay's
# clock past every deadline in the file and raise a flood of false red cards.
EARLIEST_PLAUSIBLE_YEAR = 1990
LATEST_PLAUSIBLE_YEAR = 2100


class Contract(BaseModel):
    """Base of every wire model: unknown fields are ignored (a tolerant reader, as CloudEvents asks
    of consumers, so producers can add fields) and a parsed model is immutable."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=False)


def _plausible(moment: datetime) -> datetime:
    if not EARLIEST_PLAUSIBLE_YEAR <= moment.year < LATEST_PLAUSIBLE_YEAR:
        raise ValueError(
            f"year {moment.year} is outside the plausible range "
            f"{EARLIEST_PLAUSIBLE_YEAR}-{LATEST_PLAUSIBLE_YEAR - 1}"
        )
    return moment


Instant = Annotated[AwareDatetime, AfterValidator(_plausible)]
"""A timezone-aware timestamp (a naive one is rejected: 'Input should have timezone info')."""

Code = Annotated[str, Field(min_length=1, max_length=128)]
Identifier = Annotated[str, Field(min_length=1, max_length=256)]
Text = Annotated[str, Field(max_length=4000)]

TimeUnit = Literal["working_days", "calendar_days"]


class Duration(Contract):
    """A legal period: `{value, unit}`; the unit is working days (工作日) unless a law says otherwise."""

    value: Annotated[int, Field(ge=0, le=3650)]
    unit: TimeUnit = "working_days"


def working_days(value: int) -> Duration:
    return Duration(value=value, unit="working_days")


__all__ = [
    "SCHEMA_VERSION",
    "Code",
    "Contract",
    "Duration",
    "Identifier",
    "Instant",
    "Text",
    "TimeUnit",
    "working_days",
]
