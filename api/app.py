"""The FastAPI application: routes over a runtime's services (embedded monitor or Kafka topics)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from api.routes import alerts, cases, health, ingest, reference, referrals, scorecards
from api.routes.alerts import Hub
from api.services import Services

log = logging.getLogger("permitwatch.api")
CONSOLE = Path(__file__).resolve().parent / "console"


def create_app(services: Services, background: Callable[[], list] | None = None) -> FastAPI:
    """`background` returns the coroutines to run while the app serves (scheduler, demo feeder)."""
    hub = Hub()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        hub.bind(asyncio.get_running_loop())
        listeners = getattr(services.monitor, "listeners", None)
        if listeners is not None:
            listeners.append(hub.notify)
        tasks = [asyncio.create_task(job) for job in (background() if background else [])]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                # Bounded: a background job stuck in a thread must not hold the shutdown.
                _, stuck = await asyncio.wait(tasks, timeout=5)
                if stuck:
                    log.warning("%d background job(s) did not stop within 5 s", len(stuck))
            if listeners is not None:
                listeners.remove(hub.notify)

    app = FastAPI(
        title="permitwatch",
        version="0.1.0",
        summary="E-supervision of administrative licensing (行政审批电子监察): alerts, cases, referrals",
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.hub = hub
    for module in (ingest, alerts, cases, referrals, scorecards, reference, health):
        app.include_router(module.router)
    app.mount("/console", StaticFiles(directory=CONSOLE, html=True), name="console")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/console/")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"detail": "; ".join(problems)}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Never a stack trace to a client; the log has it.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; the monitor logged it"},
                            status_code=status.HTTP_500_INTERNAL_SERVER_ERROR)

    return app
