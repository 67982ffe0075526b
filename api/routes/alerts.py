"""Alerts: listing with filters and cursor pages, a live stream (SSE), and operator actions.

An action (acknowledge, assign, dismiss) is recorded with who and when; it never edits the alert."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from permitwatch.api.auth import Principal, requires
from permitwatch.api.problems import AUTHENTICATED, BAD_BODY, CURSOR_MAX, NOT_FOUND, UNAVAILABLE, QueryInstant
from permitwatch.api.read_model import AlertFilter
from permitwatch.models.common import RULE_ID_PATTERN
from permitwatch.models.views import ActionRecord, AlertPage, AlertView

router = APIRouter(tags=["alerts"], responses=AUTHENTICATED)
Operator = Annotated[Principal, Depends(requires("operator"))]


@router.get("/alerts", response_model=AlertPage, summary="Alerts, newest first (latest record of each)")
def list_alerts(
    request: Request,
    _: Operator,
    rule: Annotated[str | None, Query(pattern=f"^{RULE_ID_PATTERN}$")] = None,
    signal: Literal["warning", "yellow", "red", "data"] | None = None,
    status_: Annotated[Literal["active", "retracted"] | None, Query(alias="status")] = None,
    department: str | None = None,
    item: str | None = None,
    officer: str | None = None,
    case: str | None = None,
    detected_from: Annotated[QueryInstant | None, Query(alias="from")] = None,
    detected_to: Annotated[QueryInstant | None, Query(alias="to")] = None,
    acknowledged: bool | None = None,
    dismissed: bool | None = None,
    cursor: Annotated[int | None, Query(ge=0, le=CURSOR_MAX)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> AlertPage:
    where = AlertFilter(rule, signal, status_, department, item, officer, case, detected_from, detected_to,
                        acknowledged, dismissed)
    return request.app.state.services.read.alerts(where, cursor, limit)


@router.get("/alerts/stream", summary="New alert records as Server-Sent Events (resumable)",
            response_class=StreamingResponse)
async def stream_alerts(
    request: Request,
    _: Operator,
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[int | None, Query(ge=0, le=CURSOR_MAX,
                                       description="resume after this record (instead of Last-Event-ID)")] = None,
) -> StreamingResponse:
    services = request.app.state.services
    hub = request.app.state.hub
    start = after if after is not None else (int(last_event_id) if last_event_id and last_event_id.isdigit()
                                             and int(last_event_id) <= CURSOR_MAX else None)
    if start is None:
        start = await run_in_threadpool(services.read.last_alert_seq)

    async def events():
        position = start
        yield "retry: 2000\n\n"
        while not await request.is_disconnected():
            ticket = hub.ticket()  # taken before reading, so a store in between is not missed
            views = await run_in_threadpool(services.read.alerts_after, position)
            for view in views:
                position = view.seq
                yield f"id: {view.seq}\nevent: alert\ndata: {view.model_dump_json()}\n\n"
            if not views and not await hub.wait(ticket, timeout=15):
                yield ": keep-alive\n\n"

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get("/alerts/{alert_id}", response_model=list[AlertView], summary="Every record of one alert",
            responses=NOT_FOUND)
def alert_history(request: Request, alert_id: str, _: Operator) -> list[AlertView]:
    history = request.app.state.services.read.alert_history(alert_id)
    if not history:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id!r}")
    return history


@router.get("/alerts/{alert_id}/actions", response_model=list[ActionRecord], summary="The audit trail of one alert",
            responses=NOT_FOUND)
def alert_actions(request: Request, alert_id: str, _: Operator) -> list[ActionRecord]:
    read = request.app.state.services.read
    actions = read.actions("alert", alert_id)
    if not actions and not read.alert_exists(alert_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id!r}")
    return actions


class AssignBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assignee: str = Field(min_length=1, max_length=256)


class DismissBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=3, max_length=4000, description="Why the alert needs no action (required)")


def _act(request: Request, alert_id: str, principal: Principal, action: str, reason: str | None = None,
         assignee: str | None = None) -> ActionRecord:
    services = request.app.state.services
    if not services.read.alert_exists(alert_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert {alert_id!r}")
    if action == "acknowledge":
        # Acknowledged is a state, not an event to count: a second click answers with the first.
        done = next((a for a in services.read.actions("alert", alert_id) if a.action == "acknowledge"), None)
        if done is not None:
            return done
    return services.runtime.act(ActionRecord(seq=0, target_kind="alert", target_id=alert_id, action=action,
                                             actor=principal.name, at=services.runtime.now(), reason=reason,
                                             assignee=assignee))


@router.post("/alerts/{alert_id}/ack", response_model=ActionRecord, summary="Acknowledge (audited)",
             responses={**NOT_FOUND, **UNAVAILABLE})
def acknowledge(request: Request, alert_id: str, principal: Operator) -> ActionRecord:
    return _act(request, alert_id, principal, "acknowledge")


@router.post("/alerts/{alert_id}/assign", response_model=ActionRecord, summary="Assign to someone (audited)",
             responses={**BAD_BODY, **NOT_FOUND, **UNAVAILABLE})
def assign(request: Request, alert_id: str, body: AssignBody, principal: Operator) -> ActionRecord:
    return _act(request, alert_id, principal, "assign", assignee=body.assignee)


@router.post("/alerts/{alert_id}/dismiss", response_model=ActionRecord, summary="Dismiss with a reason (audited)",
             responses={**BAD_BODY, **NOT_FOUND, **UNAVAILABLE})
def dismiss(request: Request, alert_id: str, body: DismissBody, principal: Operator) -> ActionRecord:
    return _act(request, alert_id, principal, "dismiss", reason=body.reason)


class Hub:
    """Wakes every SSE stream when the runtime stores new outputs (`notify` from any thread).

    Each notification sets the current event and replaces it, so every waiter holding a ticket
    for it wakes, and none clears it for the others."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event = asyncio.Event()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def notify(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._fire)

    def _fire(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    def ticket(self) -> asyncio.Event:
        return self._event

    async def wait(self, ticket: asyncio.Event, timeout: float) -> bool:
        try:
            await asyncio.wait_for(ticket.wait(), timeout)
        except TimeoutError:
            return False
        return True
