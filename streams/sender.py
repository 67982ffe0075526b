"""Posting a JSON-lines file to a running monitor in batches, with a progress bar."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import orjson

from streams.readers import open_binary


@dataclass
class SendReport:
    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)


class SendError(RuntimeError):
    """The monitor refused the request itself (authentication, size, availability)."""


def post(url: str, token: str, body: bytes) -> dict:
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return orjson.loads(response.read())
    except urllib.error.HTTPError as error:
        payload = error.read()
        if error.code in (400, 422):
            return orjson.loads(payload)
        detail = payload.decode(errors="replace")
        raise SendError(f"{error.code} from {url}: {detail}") from None
    except urllib.error.URLError as error:
        raise SendError(f"cannot reach {url}: {error.reason}") from None


def send_file(path: Path, base_url: str, token: str, batch: int, progress: TextIO | None = None) -> SendReport:
    total = sum(1 for line in open_binary(path) if line.strip())
    report = SendReport()
    pending: list[tuple[int, bytes]] = []

    def flush() -> None:
        if not pending:
            return
        answer = post(f"{base_url}/events", token, b"\n".join(raw for _, raw in pending))
        report.accepted += answer.get("accepted", 0)
        report.duplicates += answer.get("duplicates", 0)
        for rejection in answer.get("rejected", []):
            report.rejected.append((pending[rejection["index"]][0], rejection["reason"]))
        pending.clear()
        if progress is not None:
            done = report.lines
            filled = int(30 * done / max(total, 1))
            progress.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{total} events")
            progress.flush()

    with open_binary(path) as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip(b"\r\n")
            if not line.strip():
                continue
            pending.append((number, line))
            report.lines += 1
            if len(pending) >= batch:
                flush()
        flush()
    if progress is not None:
        progress.write("\n")
    return report
