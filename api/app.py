"""The FastAPI application: routes over a runtime's services (embedded monitor or Kafka topics)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from api.routes import alerts, cases, health, ingest, reference, referrals, scorecards
from api.routes.alerts import Hub
from api.services import Services

log = logging.getLogger("permitwatch.api")
CONSOLE = Path(__file__).resolve().parent / "console"
# Swagger UI and ReDoc from the package, not FastAPI's default CDN: supervision centres run
# air-gapped (versions and licences in api/static/README.md).
STATIC = Path(__file__).resolve().parent / "static"
# What the docs pages may load: the server's own files, so a browser asks nothing of the internet
# even where a bundle would (ReDoc's sidebar footer shows Redocly's logo from their CDN; refused
# here, the link shows without it). The inline script and styles are the pages' own: FastAPI's
# Swagger UI start-up, ReDoc's generated styles; ReDoc's search runs in a worker made from a blob.
DOCS_POLICY = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
               "img-src 'self' data:; worker-src 'self' blob:")


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
        docs_url=None,
        redoc_url=None,
    )
    app.state.services = services
    app.state.hub = hub
    for module in (ingest, alerts, cases, referrals, scorecards, reference, health):
        app.include_router(module.router)
    app.mount("/console", StaticFiles(directory=CONSOLE, html=True), name="console")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def prefix(request: Request) -> str:
        # Behind a proxy that mounts the app under a path, as FastAPI's own docs pages do.
        return request.scope.get("root_path", "").rstrip("/")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        base = prefix(request)
        page = get_swagger_ui_html(
            openapi_url=base + app.openapi_url, title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{base}/static/swagger-ui-bundle.js", swagger_css_url=f"{base}/static/swagger-ui.css",
            swagger_favicon_url=f"{base}/static/favicon-32x32.png",
            # No validator badge: an image that validator.swagger.io draws for the spec's URL.
            swagger_ui_parameters={"validatorUrl": None})
        page.headers["Content-Security-Policy"] = DOCS_POLICY
        return page

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        base = prefix(request)
        page = get_redoc_html(
            openapi_url=base + app.openapi_url, title=f"{app.title} - ReDoc",
            redoc_js_url=f"{base}/static/redoc.standalone.js", redoc_favicon_url=f"{base}/static/favicon-32x32.png",
            with_google_fonts=False)
        page.headers["Content-Security-Policy"] = DOCS_POLICY
        return page

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
