"""The FastAPI application: routes over a runtime's services (embedded monitor or Kafka topics)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import TypeAdapter
from starlette.exceptions import HTTPException as StarletteHTTPException

from permitwatch.api.problems import known_query
from permitwatch.api.routes import alerts, cases, health, ingest, reference, referrals, scorecards
from permitwatch.api.routes.alerts import Hub
from permitwatch.api.services import Services
from permitwatch.models.calendar import CalendarOverride
from permitwatch.models.catalog import Catalog
from permitwatch.models.errors import PermitwatchError, Unavailable
from permitwatch.models.events import EVENT_ADAPTER

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
        listeners = services.runtime.listeners
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
            listeners.remove(hub.notify)

    app = FastAPI(
        title="permitwatch",
        version="0.1.0",
        summary="E-supervision of administrative licensing (行政审批电子监察): alerts, cases, referrals",
        lifespan=lifespan,
        dependencies=[Depends(known_query)],
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

    def openapi() -> dict:
        """FastAPI's description, plus the bodies the routes read themselves (to accept several
        content types): the CloudEvent (a union of 18 event types) of POST /events, the catalog
        and calendar files of PUT /catalog and /calendar."""
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, adapter in (("CloudEvent", EVENT_ADAPTER), ("Catalog", TypeAdapter(Catalog)),
                                  ("CalendarOverride", TypeAdapter(CalendarOverride))):
                body = adapter.json_schema(ref_template="#/components/schemas/{model}")
                components.update(body.pop("$defs", {}))
                components[name] = body
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi

    templates: list[tuple[re.Pattern, set[str]]] = []

    def allowed(path: str) -> list[str]:
        """Every method some operation takes at `path`, from the OpenAPI description (Starlette
        answers 405 with the methods of the first route that matched the path only)."""
        if not templates:
            for template, operations in app.openapi()["paths"].items():
                pattern = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")
                templates.append((pattern, {method.upper() for method in operations}))
        methods = set().union(*(methods for pattern, methods in templates if pattern.match(path)))
        return sorted(methods | {"OPTIONS"}) if methods else []

    @app.middleware("http")
    async def options_and_bugs(request: Request, call_next):
        if request.method == "OPTIONS":
            methods = allowed(request.url.path)
            if methods:
                return Response(status_code=status.HTTP_204_NO_CONTENT, headers={"Allow": ", ".join(methods)})
        try:
            return await call_next(request)
        except Exception:
            # Answered here, once: an exception handler would be called by Starlette's error
            # middleware, which then re-raises for the server to log the same traceback again.
            # Never a stack trace to a client; the log has it.
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            return JSONResponse({"detail": "internal error; the monitor logged it"},
                                status_code=status.HTTP_500_INTERNAL_SERVER_ERROR)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
            headers["Allow"] = ", ".join(allowed(request.url.path))
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(PermitwatchError)
    async def refused(request: Request, exc: PermitwatchError) -> JSONResponse:
        """Every error permitwatch raises on purpose, answered by its class (`models/errors.py`)."""
        detail = str(exc)
        if isinstance(exc, Unavailable):
            detail += "; nothing was stored: retry later"
        elif exc.http_status >= 500:
            log.error("%s on %s %s: %s", type(exc).__name__, request.method, request.url.path, exc)
        return JSONResponse({"detail": detail}, status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"detail": "; ".join(problems)}, status_code=422)

    return app
