"""What every error answer of the API looks like, and which ones each operation documents.

An error is `{"detail": "<what is wrong, naming the field>"}`, whatever its status; clients and the
OpenAPI description agree on that (FastAPI's own 422 shape, a list of objects, is not used)."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from fastapi import HTTPException, Request
from pydantic import BaseModel, BeforeValidator, Field, WithJsonSchema

from permitwatch.models.common import ISO_DAY, day_start


class Problem(BaseModel):
    detail: str = Field(description="What is wrong, naming the field when a field is")


def problem(description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description}


AUTHENTICATED = {
    401: problem("no bearer token, or an unknown one"),
    403: problem("the token lacks the role the operation needs"),
    422: problem("a parameter or the body is invalid"),
}
"""Every operation behind a token."""

NOT_FOUND = {404: problem("no such record")}
UNAVAILABLE = {503: problem("the runtime cannot store it now (a full disk, Kafka unreachable); retry")}
BAD_BODY = {400: problem("the body is not what the content type says (not JSON, not UTF-8)"),
            413: problem("the body is larger than the limit")}

CURSOR_MAX = 2**63 - 1
"""Cursors and sequence numbers are SQLite integers."""


def _iso_instant(value: object) -> object:
    # pydantic would read "1.6e-297" as seconds since 1970; a query says what time it means.
    if isinstance(value, str) and not _ISO.match(value):
        raise ValueError("an ISO 8601 time with a timezone is expected, e.g. 2026-03-02T09:00:00+08:00")
    return value


_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")

QueryInstant = Annotated[datetime, BeforeValidator(_iso_instant)]
"""A time in a query: ISO 8601 only."""

def _period_bound(days_after: int):
    def bound(value: object) -> object:
        if isinstance(value, str) and ISO_DAY.fullmatch(value):
            try:
                return day_start(date.fromisoformat(value) + timedelta(days=days_after))
            except (ValueError, OverflowError) as exc:
                raise ValueError(f"not a day: {exc}") from None
        return _iso_instant(value)
    return bound


_DAY_OR_TIME = WithJsonSchema({"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}]})

QueryPeriodStart = Annotated[datetime, BeforeValidator(_period_bound(0)), _DAY_OR_TIME]
"""The start of a period in a query: an ISO 8601 time, or a day (YYYY-MM-DD: its 00:00 in legal
time), as the command line takes it."""
QueryPeriodEnd = Annotated[datetime, BeforeValidator(_period_bound(1)), _DAY_OR_TIME]
"""The end of a period in a query: an ISO 8601 time, or a day, which the period then includes (the
next day's 00:00 in legal time), as the command line takes it."""


async def known_query(request: Request) -> None:
    """Refuse a query parameter the operation does not take: a typo (`?stauts=open`) would otherwise
    be ignored and return everything, which an operator could take for a filtered answer."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    params = {param.alias: param for param in _query_params(dependant)}
    unknown = sorted(set(request.query_params) - params.keys())
    if unknown:
        takes = ", ".join(sorted(params)) or "none"
        raise HTTPException(422, f"unknown query parameter {unknown[0]!r}; this operation takes: {takes}")
    # One value only, unless the parameter is a list: `?department=A&department=B` would otherwise
    # be answered for B alone, which reads as an answer for both.
    for name, param in params.items():
        given = request.query_params.getlist(name)
        if len(given) > 1 and not _takes_many(param.field_info.annotation):
            raise HTTPException(422, f"query parameter {name!r} given {len(given)} times; it takes one value")


def _takes_many(annotation: object) -> bool:
    if get_origin(annotation) in (Union, UnionType):
        return any(_takes_many(arg) for arg in get_args(annotation))
    return (get_origin(annotation) or annotation) in (list, tuple, set, frozenset)


def _query_params(dependant) -> list:
    found = list(dependant.query_params)
    for sub in dependant.dependencies:
        found += _query_params(sub)
    return found
