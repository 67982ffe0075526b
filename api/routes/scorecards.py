"""GET /scorecards: per-department and per-item performance over a period (绩效评估)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from permitwatch.alerts.scorecard import case_states, scorecards
from permitwatch.api.auth import Principal, requires
from permitwatch.api.problems import AUTHENTICATED, QueryPeriodEnd, QueryPeriodStart
from permitwatch.api.routes.cases import deadline_context
from permitwatch.models.events import parse_event
from permitwatch.models.scorecard import ScorecardRow

router = APIRouter(tags=["scorecards"], responses=AUTHENTICATED)


@router.get("/scorecards", response_model=list[ScorecardRow], summary="Scorecards over [from, to)")
def get_scorecards(
    request: Request,
    _: Annotated[Principal, Depends(requires("operator"))],
    start: Annotated[QueryPeriodStart, Query(alias="from", description=(
        "the period's start: an ISO 8601 time with its timezone, or a day (YYYY-MM-DD, from its 00:00 "
        "Asia/Shanghai)"))],
    end: Annotated[QueryPeriodEnd, Query(alias="to", description=(
        "the period's end (excluded): an ISO 8601 time with its timezone, or a day (YYYY-MM-DD), which "
        "the period then includes"))],
    department: str | None = None,
) -> list[ScorecardRow]:
    if start.tzinfo is None or end.tzinfo is None:
        raise HTTPException(422, "from and to need a timezone, e.g. +08:00")
    if end <= start:
        raise HTTPException(422, "to must be after from")
    services = request.app.state.services
    events = (parse_event(raw) for raw in services.read.journal_events())
    ctx = deadline_context(services.runtime)
    rows = scorecards(case_states(events), services.read.all_alerts(), start, end, ctx)
    return [row for row in rows if department is None or row.department == department]
