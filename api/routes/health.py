"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

router = APIRouter(tags=["operations"])


class Check(BaseModel):
    ok: bool
    detail: str


class Readiness(BaseModel):
    ready: bool
    clock: datetime = Field(description="The runtime's clock (the real time, or the demo's)")
    checks: dict[str, Check] = Field(description="engine (on Kafka: the topics followed), database, deadlines (embedded)")


class Liveness(BaseModel):
    status: Literal["alive"]


@router.get("/healthz", summary="The process is alive", response_model=Liveness)
def healthz() -> dict:
    return {"status": "alive"}


@router.get("/readyz", summary="Ready for traffic: engine rebuilt, database writable, deadlines firing",
            response_model=Readiness, responses={503: {"model": Readiness, "description": "not ready: see the checks"}})
async def readyz(request: Request) -> JSONResponse:
    services = request.app.state.services
    checks = await run_in_threadpool(services.readiness)
    ready = all(ok for ok, _ in checks.values())
    answer = Readiness(ready=ready, clock=services.runtime.now(),
                       checks={k: Check(ok=ok, detail=d) for k, (ok, d) in checks.items()})
    return JSONResponse(answer.model_dump(mode="json"),
                        status_code=status.HTTP_200_OK if ready else status.HTTP_503_SERVICE_UNAVAILABLE)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
                             "description": "the Prometheus text format"}})
async def metrics(request: Request) -> Response:
    services = request.app.state.services
    await run_in_threadpool(services.runtime.refresh_gauges)
    return Response(generate_latest(services.runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
