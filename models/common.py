"""Building blocks shared by every schema: strict base models, times, durations."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

SCHEMA_VERSION = "1.0"
RULE_ID_PATTERN = r"PW-0(0[1-9]|1[0-9])"
"""A rule id, PW-001 … PW-019 (LEGAL-RULES.md §2)."""

# Plausible range for a licensing event. A year-9999 timestamp would otherwise move a replay's
# clock past every deadline in the file and raise a flood of false red cards.
EARLIEST_PLAUSIBLE_YEAR = 1990
LATEST_PLAUSIBLE_YEAR = 2100


class Contract(BaseModel):
    """Base of every wire model: unknown fields are ignored (a tolerant reader, as CloudEvents asks
    of consumers, so producers can add fields) and a parsed model is immutable."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=False)


LEGAL_TZ = ZoneInfo("Asia/Shanghai")
"""Legal dates are computed in Asia/Shanghai (LEGAL-RULES.md §1)."""


def _in_legal_time(moment: datetime) -> datetime:
    # One tzinfo object for every instant: aware datetimes that share it compare ten times
    # faster than ones with a tzinfo each, and the engine compares instants all the time.
    return moment.astimezone(LEGAL_TZ)


Instant = Annotated[
    AwareDatetime,
    Field(
        ge=datetime(EARLIEST_PLAUSIBLE_YEAR, 1, 1, tzinfo=UTC),
        lt=datetime(LATEST_PLAUSIBLE_YEAR, 1, 1, tzinfo=UTC),
    ),
]
"""A timezone-aware timestamp between 1990 and 2099 (a naive one is rejected: 'Input should have
timezone info')."""

LegalInstant = Annotated[Instant, AfterValidator(_in_legal_time)]
"""An `Instant` held in Asia/Shanghai time (the same instant, expressed in legal time): the type of
an event's `time`, which the engine compares with everything."""

PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
"""Ids and codes carry no control characters: they are printed to operators, and the Kafka
runtime keeps its own bookkeeping under keys that start with one."""

Code = Annotated[str, Field(min_length=1, max_length=128, pattern=PRINTABLE)]
Identifier = Annotated[str, Field(min_length=1, max_length=256, pattern=PRINTABLE)]
Text = Annotated[str, Field(max_length=4000)]
Prose = Annotated[str, Field(min_length=1, max_length=4000, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]+$")]
"""Free text a person wrote (a reason): lines and tabs, but no other control characters."""

TimeUnit = Literal["working_days", "calendar_days"]


_WHOLE_TEXT = re.compile(r"\s*([0-9]+)(?:\.0+)?\s*", re.ASCII)


def whole_number(value: object) -> int:
    """A whole number as JSON or text gives it: an integer, a number without a fraction, or ASCII
    digits (spaces around them, `.0` after them allowed). `ValueError` for anything else: pydantic
    and Python's int() read true as 1, "5_0" as fifty and digits of any script."""
    if isinstance(value, bool):
        raise ValueError("true or false is not a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and (digits := _WHOLE_TEXT.fullmatch(value)):
        return int(digits.group(1))
    raise ValueError(f"{str(value)[:20]!r} is not a whole number such as 5 or \"5\"")


def _not_a_truth_value(value: object) -> object:
    # pydantic takes true for the integer 1, and YAML reads yes, no, on and off as true and false:
    # a catalog's `warning_working_days: yes` was one working day, an extension of `true` one day.
    # Other numbers are left to pydantic, whose constraints and messages the JSON Schema shows.
    if isinstance(value, bool):
        raise ValueError("a number of days, not true or false")
    if isinstance(value, str):
        try:
            return whole_number(value)
        except ValueError as exc:
            raise ValueError(f"a number of days: {exc}") from None
    return value


NOT_A_TRUTH_VALUE = BeforeValidator(_not_a_truth_value)
"""For a number of days, after its constraints (so that they stay in the JSON Schema): an
integer (or its digits as text), never true or false, never "5_0"."""


ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
"""A day as the contract writes it: YYYY-MM-DD."""


def _iso_day(value: object) -> object:
    # pydantic reads a number, or a string of digits, as seconds since 1970: a holiday written 0
    # was 1970-01-01, and a promised deadline of 0 one long past (a yellow card the next day).
    if (isinstance(value, date) and not isinstance(value, datetime)) or \
            (isinstance(value, str) and ISO_DAY.fullmatch(value)):
        return value
    raise ValueError(f"a day as YYYY-MM-DD, e.g. 2026-10-01, not {str(value)[:40]!r}")


Day = Annotated[date, BeforeValidator(_iso_day)]
"""A calendar day, as the contract writes it (YYYY-MM-DD; in YAML also a date it reads as one)."""


class Duration(Contract):
    """A legal period: `{value, unit}`; the unit is working days (工作日) unless a law says otherwise."""

    value: Annotated[int, Field(ge=0, le=3650), NOT_A_TRUTH_VALUE]
    unit: TimeUnit = "working_days"

    @property
    def zh(self) -> str:
        return f"{self.value} 个工作日" if self.unit == "working_days" else f"{self.value} 日"

    @property
    def en(self) -> str:
        return f"{self.value} {self.unit.replace('_', ' ')}"


def day_start(day: date) -> datetime:
    """00:00 of `day` in legal time: where a day given as a period's bound begins (and, for the day
    before, ends)."""
    return datetime.combine(day, time(), LEGAL_TZ)


def working_days(value: int) -> Duration:
    return Duration(value=value, unit="working_days")


def record_bytes(model: BaseModel) -> bytes:
    """An output record as JSON: fields in model order, so equal records are equal bytes. The same
    bytes in every runtime (replay lines, the embedded store, Kafka values). pydantic's serializer
    writes them directly, as `orjson.dumps(model_dump(mode="json"))` did, at about half the cost."""
    return type(model).__pydantic_serializer__.to_json(model)


def json_line(model: BaseModel) -> bytes:
    """One output record as a JSON line."""
    return record_bytes(model) + b"\n"


__all__ = [
    "LEGAL_TZ",
    "SCHEMA_VERSION",
    "Code",
    "Contract",
    "Duration",
    "Identifier",
    "Instant",
    "LegalInstant",
    "Prose",
    "Text",
    "TimeUnit",
    "json_line",
    "record_bytes",
    "working_days",
]
