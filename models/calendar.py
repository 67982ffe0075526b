"""Reference data: a calendar override file (State Council holiday arrangement for a year)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, model_validator

from permitwatch.models.common import Contract, Day
from permitwatch.models.files import load_structured


class CalendarOverride(Contract):
    """`holidays` are days off; `workdays` are weekend days worked in exchange (调休上班日).
    The file adds to, and for its dates overrides, the built-in calendar."""

    version: Annotated[str, Field(min_length=1, max_length=128)]
    holidays: list[Day] = []
    workdays: list[Day] = []

    @model_validator(mode="after")
    def _disjoint(self) -> CalendarOverride:
        both = sorted(set(self.holidays) & set(self.workdays))
        if both:
            raise ValueError(f"dates listed both as holiday and workday: {', '.join(map(str, both))}")
        return self

    @property
    def years(self) -> frozenset[int]:
        """The years this file publishes. Every published year has holidays (New Year's Day at
        least); a make-up workday alone, e.g. in late January for the next Spring Festival, does
        not make its year published."""
        return frozenset(d.year for d in self.holidays)


def load_calendar(path: str | Path) -> CalendarOverride:
    return load_structured(path, CalendarOverride)
