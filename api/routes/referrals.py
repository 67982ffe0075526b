"""Referrals: the latest version of each, every version of one, and recording an exemption."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from permitwatch.api.auth import Principal, requires
from permitwatch.api.problems import AUTHENTICATED, BAD_BODY, CURSOR_MAX, NOT_FOUND, UNAVAILABLE, problem
from permitwatch.models.referrals import ExemptionRequest, Referral
from permitwatch.models.views import ActionRecord, ReferralPage
from permitwatch.streams.port import RawInput

router = APIRouter(tags=["referrals"], responses=AUTHENTICATED)
Operator = Annotated[Principal, Depends(requires("operator"))]


@router.get("/referrals", response_model=ReferralPage, summary="Referrals, latest version of each, newest first")
def list_referrals(
    request: Request,
    _: Operator,
    status_: Annotated[Literal["open", "withdrawn", "exempt"] | None, Query(alias="status")] = None,
    department: str | None = None,
    cursor: Annotated[int | None, Query(ge=0, le=CURSOR_MAX)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ReferralPage:
    return request.app.state.services.read.referrals(status_, department, cursor, limit)


@router.get("/referrals/{referral_id}", response_model=list[Referral], summary="Every version of one referral",
            responses=NOT_FOUND)
def referral_versions(request: Request, referral_id: str, _: Operator) -> list[Referral]:
    versions = request.app.state.services.read.referral_versions(referral_id)
    if not versions:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no referral {referral_id!r}")
    return versions


@router.post("/referrals/{referral_id}/exemption", status_code=status.HTTP_201_CREATED, response_model=Referral,
             responses={200: {"model": Referral, "description": "the same exemption was recorded before: no new "
                                                             "version; the latest one"},
                        202: problem("recorded; the new version was not out in time (on Kafka, the workers make "
                                     "it; embedded, the clock must pass the instant it was recorded)"),
                        **BAD_BODY, **NOT_FOUND, **UNAVAILABLE},
             summary="Record an SZ-XK art. 15 exemption (a new version, marked exempt)")
async def record_exemption(request: Request, referral_id: str, body: ExemptionRequest, principal: Operator):
    services = request.app.state.services
    case_id = await run_in_threadpool(services.runtime.referral_case, referral_id)
    if case_id is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no referral {referral_id!r}")
    if body.recorded_by not in (None, principal.name):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"recorded_by must be you ({principal.name!r})")
    latest = services.read.referral_versions(case_id)[-1]
    now = services.runtime.now()
    if body.decided_at is not None:
        first = min(alert.detected_at for alert in latest.alerts)
        if not first <= body.decided_at <= now:
            raise HTTPException(422, f"decided_at: must lie between the referral's first red alert "
                                     f"({first.isoformat()}) and now ({now.isoformat()})")
    ground = {"ground": body.ground, "reason": body.reason, "recorded_by": principal.name,
              "decided_at": body.decided_at.isoformat() if body.decided_at else None}
    if latest.exemption is not None and latest.exemption.states(body.ground, body.reason, principal.name,
                                                               body.decided_at):
        return JSONResponse(latest.model_dump(mode="json"), status_code=status.HTTP_200_OK)
    record = {
        "specversion": "1.0",
        "id": f"exemption-{uuid.uuid4()}",
        "source": "/permitwatch/api",
        "type": "cn.gov.permitwatch.exemption.recorded",
        "time": now.isoformat(),  # the monitor's clock: a client cannot date a version
        "subject": case_id,
        "data": ground,
    }
    before = latest.version
    result = await run_in_threadpool(services.runtime.ingest, [RawInput(f"api:{principal.name}", orjson.dumps(record))])
    if result.rejected:
        raise HTTPException(422, result.rejected[0].reason)
    await run_in_threadpool(services.runtime.act, ActionRecord(
        seq=0, target_kind="referral", target_id=referral_id, action="exempt", actor=principal.name,
        at=services.runtime.now(), reason=body.reason))
    # On Kafka the workers make the new version after the event is on the topic; wait for it.
    deadline = time.monotonic() + services.exemption_wait_seconds
    while True:
        latest = services.read.referral_versions(case_id)[-1]
        exempted = latest.version > before and latest.exemption is not None
        if exempted or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    if not exempted:
        return JSONResponse({"detail": "exemption recorded; the referral's new version is not out yet"},
                            status_code=status.HTTP_202_ACCEPTED)
    return latest
