"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
def healthz() -> dict:
    return {"status": "alive"}


@router.get("/readyz", summary="Ready for traffic: engine rebuilt, database writable, deadlines firing")
async def readyz(request: Request) -> JSONResponse:
    services = request.app.state.services
    checks = {
        "engine": services.monitor.ready(),
        "database": await run_in_threadpool(services.store.writable),
    }
    scheduler = getattr(request.app.state, "scheduler", None)
    if scheduler is not None:
        checks["deadlines"] = (scheduler.running, "scheduler running" if scheduler.running else "scheduler stopped")
    ready = all(ok for ok, _ in checks.values())
    return JSONResponse({"ready": ready, "checks": {k: {"ok": ok, "detail": d} for k, (ok, d) in checks.items()}},
                        status_code=status.HTTP_200_OK if ready else status.HTTP_503_SERVICE_UNAVAILABLE)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    services = request.app.state.services
    await run_in_threadpool(services.monitor.refresh_gauges)
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
