"""The item catalog and the calendar: anyone with a token reads them, an admin replaces them (the
runtime then recomputes every open deadline)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool

from permitwatch.alerts.clock import WorkingCalendar
from permitwatch.api.auth import Principal, requires
from permitwatch.api.problems import AUTHENTICATED, BAD_BODY, UNAVAILABLE
from permitwatch.api.routes.ingest import read_body
from permitwatch.models.calendar import CalendarOverride
from permitwatch.models.catalog import Catalog
from permitwatch.models.views import CalendarView, ReferenceChange

router = APIRouter(tags=["reference data"], responses=AUTHENTICATED)


def _file_body(model: type, *alternatives: dict) -> dict:
    """The OpenAPI request body of an uploaded reference file: JSON of `model` (or of one of the
    `alternatives`), or the same as YAML."""
    schema: dict = {"$ref": f"#/components/schemas/{model.__name__}"}
    if alternatives:
        schema = {"oneOf": [schema, *alternatives]}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema},
                                                          "application/yaml": {"schema": schema}}}}


@router.get("/catalog", response_model=Catalog, summary="The item catalog in effect")
def get_catalog(request: Request, _: Annotated[Principal, Depends(requires("operator"))]) -> Catalog:
    return request.app.state.services.runtime.reference()[0]


@router.get("/calendar", response_model=CalendarView, summary="The working-day calendar in effect")
def get_calendar(request: Request, _: Annotated[Principal, Depends(requires("operator"))],
                 year: Annotated[int | None, Query(ge=1990, le=2099)] = None) -> CalendarView:
    _, overrides, _ = request.app.state.services.runtime.reference()
    calendar = WorkingCalendar.of(overrides)
    days = []
    if year is not None:
        day = date(year, 1, 1)
        while day.year == year:
            days.append({"date": day.isoformat(), "kind": calendar.day_kind(day)})
            day += timedelta(days=1)
    return CalendarView(version=calendar.version, published_years=sorted(calendar.published_years),
                        overrides=[o.model_dump(mode="json") for o in overrides], days=days)


async def _replace(request: Request, kind: str) -> ReferenceChange:
    services = request.app.state.services
    raw = await read_body(request, services.max_body_bytes)
    return await run_in_threadpool(services.runtime.update_reference, kind, raw)


@router.put("/catalog", summary="Replace the item catalog (JSON or YAML body); open deadlines are recomputed",
            response_model=ReferenceChange, responses={**BAD_BODY, **UNAVAILABLE},
            openapi_extra=_file_body(Catalog, {"type": "array", "items": {"$ref": "#/components/schemas/CatalogEntry"},
                                               "description": "a bare list of entries"}))
async def put_catalog(request: Request, _: Annotated[Principal, Depends(requires("admin"))]) -> ReferenceChange:
    return await _replace(request, "catalog")


@router.put("/calendar", summary="Add or replace a calendar override file (JSON or YAML body)",
            response_model=ReferenceChange, responses={**BAD_BODY, **UNAVAILABLE},
            openapi_extra=_file_body(CalendarOverride))
async def put_calendar(request: Request, _: Annotated[Principal, Depends(requires("admin"))]) -> ReferenceChange:
    return await _replace(request, "calendar")
