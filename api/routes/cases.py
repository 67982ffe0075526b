"""GET /cases/{id}: the case's timeline, its deadlines now (with the calendar version) and alerts."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, HTTPException, Request, status

from permitwatch.alerts.case import CaseState
from permitwatch.alerts.clock import LegalClock, WorkingCalendar
from permitwatch.alerts.rules.base import Context
from permitwatch.alerts.timeline import case_deadlines
from permitwatch.api.auth import Principal, requires
from permitwatch.api.problems import AUTHENTICATED, NOT_FOUND
from permitwatch.api.read_model import redact
from permitwatch.models.events import ExemptionRecorded, parse_event
from permitwatch.models.views import CaseTimeline, TimelineEvent

router = APIRouter(tags=["cases"], responses=AUTHENTICATED)


def deadline_context(monitor) -> Context:
    catalog, calendars, settings = monitor.reference()
    ctx = Context(LegalClock(WorkingCalendar.of(calendars), settings.end_of_day_time), settings, catalog.by_code())
    ctx.now = monitor.now()
    return ctx


@router.get("/cases/{case_id}", response_model=CaseTimeline, summary="A case: events, deadlines, alerts, referral",
            responses=NOT_FOUND)
def case_timeline(request: Request, case_id: str, _: Annotated[Principal, Depends(requires("operator"))]):
    services = request.app.state.services
    journal = services.read.case_journal(case_id)
    if not journal:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no events for case {case_id!r}")
    case = CaseState(case_id)
    events = []
    for raw, received_at in journal:
        event = parse_event(raw)
        if not isinstance(event, ExemptionRecorded):
            case.apply(event)
        data = redact(orjson.loads(raw).get("data") or {})
        events.append(TimelineEvent(id=event.id, type=event.type, time=event.time, recordedtime=event.recordedtime,
                                    received_at=received_at, data=data))
    ctx = deadline_context(services.runtime)
    deadlines = [d.info() for d in case_deadlines(case, ctx)] if ctx.now is not None else []
    item = ctx.item(case.item_code)
    versions = services.read.referral_versions(case_id)
    return CaseTimeline(
        case_id=case_id,
        item_code=case.item_code,
        item_name=item.name if item else None,
        department=case.department,
        applicant=case.applicant,
        status="closed" if case.closure else "open",
        clock=ctx.now,
        events=sorted(events, key=lambda e: (e.time, e.id)),
        deadlines=deadlines,
        alerts=services.read.case_alerts(case_id),
        referral=versions[-1] if versions else None,
    )
