"""Posting a JSON-lines file to a running monitor in batches, with a progress bar.

The last line the monitor acknowledged is kept beside the file (`FILE.sent`) while a send runs,
so that one cut short (the monitor stopped, the network went away) continues with `--resume`;
resending a batch whose answer was lost is harmless (repeats are counted as duplicates)."""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import TextIO

import orjson

from permitwatch.models.errors import Refused, Unavailable
from permitwatch.models.views import IngestReport
from permitwatch.streams.clocks import history_warning
from permitwatch.streams.inputs.readers import open_binary


class SendReport(IngestReport):
    """The monitor's reports of every batch, with each refusal's `index` the file's line."""

    lines: int = 0
    """Event lines of the file (after the resumed part)."""
    acknowledged: int = 0
    """Lines the monitor answered for."""

    @property
    def not_sent(self) -> int:
        return self.lines - self.acknowledged

    def summary(self) -> str:
        return f"{super().summary()}, not sent {self.not_sent} of {self.lines}"


class SendError(Unavailable):
    """The monitor could not take the file (unreachable, refusing the token, the size, not
    writable); the message says what was done and what to do."""


class HistoryNotSent(Refused):
    """The file is history, which a running monitor would judge at its clock."""


def progress_path(path: Path) -> Path:
    return path.with_name(path.name + ".sent")


def _post(url: str, token: str, body: bytes) -> dict:
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return orjson.loads(response.read())
    except urllib.error.HTTPError as error:
        payload = error.read()
        if error.code in (400, 422):
            return orjson.loads(payload)
        raise SendError(f"{error.code} from {url}: {payload.decode(errors='replace')}") from None
    except urllib.error.URLError as error:
        raise SendError(f"cannot reach {url}: {error.reason}") from None
    except (http.client.HTTPException, OSError) as error:  # the monitor went away mid-answer
        raise SendError(f"no answer from {url}: {type(error).__name__}: {error}") from None


def monitor_clock(base_url: str) -> datetime:
    try:
        with urllib.request.urlopen(f"{base_url}/readyz", timeout=30) as response:
            return datetime.fromisoformat(orjson.loads(response.read())["clock"])
    except urllib.error.HTTPError as error:  # 503: not ready, and still says its clock
        return datetime.fromisoformat(orjson.loads(error.read())["clock"])
    except (urllib.error.URLError, http.client.HTTPException, OSError, KeyError, ValueError) as error:
        raise SendError(f"cannot read the clock of the monitor at {base_url}/readyz: {error}") from None


def _event_lines(path: Path, after: int):
    with open_binary(path) as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip(b"\r\n")
            if number > after and line.strip():
                yield number, line


def _times(path: Path, after: int) -> list[datetime]:
    times = []
    for _, line in _event_lines(path, after):
        try:
            moment = datetime.fromisoformat(orjson.loads(line)["time"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue  # the monitor refuses it with the reason
        if moment.tzinfo is not None:
            times.append(moment)
    return times


def send_file(path: Path, base_url: str, token: str, batch: int, progress: TextIO | None = None,
              resume: bool = False, history_ok: bool = False) -> SendReport:
    """Send `path` (after the part a previous send had acknowledged, with `resume`). History
    (events far older than the monitor's clock) is refused unless `history_ok`."""
    marker = progress_path(path)
    after = int(marker.read_text()) if resume and marker.exists() else 0
    warning = history_warning(_times(path, after), monitor_clock(base_url))
    if warning and not history_ok:
        raise HistoryNotSent(f"{path}: {warning}; or send them anyway with --history-ok. Nothing was sent.")
    report = SendReport(lines=sum(1 for _ in _event_lines(path, after)))
    pending: list[tuple[int, bytes]] = []

    def flush() -> None:
        try:
            answer = _post(f"{base_url}/events", token, b"\n".join(raw for _, raw in pending))
        except SendError as error:
            raise SendError(f"{error}\n{report.summary()}; the last line acknowledged is {pending[0][0] - 1}: "
                            f"continue with `permitwatch send {path} --resume`") from None
        batch_report = IngestReport.model_validate(answer)
        batch_report.rejected = [r.model_copy(update={"index": pending[r.index][0]}) for r in batch_report.rejected]
        report.merge(batch_report)
        report.acknowledged += len(pending)
        marker.write_text(str(pending[-1][0]))
        pending.clear()
        if progress is not None:
            filled = int(30 * report.acknowledged / max(report.lines, 1))
            progress.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {report.acknowledged}/{report.lines} events")
            progress.flush()

    for number, line in _event_lines(path, after):
        pending.append((number, line))
        if len(pending) >= batch:
            flush()
    if pending:
        flush()
    marker.unlink(missing_ok=True)
    if progress is not None:
        progress.write("\n")
    return report
