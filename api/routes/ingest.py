"""POST /events: CloudEvents in, structured (one), batch (JSON array) or NDJSON."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from permitwatch.api.auth import Principal, requires
from permitwatch.api.framing import UnreadableBody, batch_of, lines_of
from permitwatch.api.problems import AUTHENTICATED, BAD_BODY, UNAVAILABLE, Problem, problem
from permitwatch.models.files import without_bom
from permitwatch.models.views import IngestReport
from permitwatch.streams.port import RawInput

router = APIRouter(tags=["ingest"], responses=AUTHENTICATED)

SINGLE = {"application/cloudevents+json", "application/json"}
BATCH = {"application/cloudevents-batch+json"}
NDJSON = {"application/x-ndjson", "application/jsonl", "application/json-lines", "application/x-jsonlines"}
SYNTAX = {"invalid_json", "invalid_utf8", "not_an_object"}


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing (413) anything larger than `limit` bytes before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body larger than {limit} bytes; send smaller batches")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413,
                                f"body larger than {limit} bytes; send smaller batches")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/events",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=IngestReport,
    responses={**BAD_BODY, 400: {"model": IngestReport | Problem,
                                 "description": "no input of the body was JSON (a report: each refusal says why), "
                                                "or the body was no JSON batch or held no events (a problem)"},
               415: problem("unsupported content type"), **UNAVAILABLE,
               422: {"model": IngestReport, "description": "no event of the body was valid: each refusal says why"}},
    summary="Send events (journalled before 202)",
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/cloudevents+json": {"schema": {"$ref": "#/components/schemas/CloudEvent"}},
        "application/cloudevents-batch+json": {"schema": {"type": "array", "minItems": 1,
                                                          "items": {"$ref": "#/components/schemas/CloudEvent"}}},
        "application/x-ndjson": {"schema": {"type": "string", "description": "one CloudEvent JSON per line"}},
    }}},
)
async def post_events(request: Request, principal: Annotated[Principal, Depends(requires("ingest"))]):
    services = request.app.state.services
    body = without_bom(await read_body(request, services.max_body_bytes))
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    origin = f"http:{principal.name}"
    try:
        if kind in BATCH or (kind in SINGLE and body.lstrip()[:1] == b"["):
            inputs = batch_of(body, origin)
        elif kind in SINGLE:
            inputs = [RawInput(origin, body)]
        elif kind in NDJSON:
            inputs = lines_of(body, origin)
        else:
            raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                                f"content type {kind or '(none)'!r} not supported; use application/cloudevents+json, "
                                "application/cloudevents-batch+json or application/x-ndjson")
    except UnreadableBody as exc:
        await run_in_threadpool(services.runtime.dead_letter, origin, "invalid_json", str(exc), body)
        raise
    if not inputs:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "no events in the body")
    report = await run_in_threadpool(services.runtime.ingest, inputs)
    code = status.HTTP_202_ACCEPTED
    if report.rejected and not report.accepted and not report.duplicates:
        syntax_only = all(r.category in SYNTAX for r in report.rejected)
        code = status.HTTP_400_BAD_REQUEST if syntax_only else 422
    return JSONResponse(report.model_dump(mode="json", exclude_none=True), status_code=code)
