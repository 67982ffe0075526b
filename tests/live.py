"""Live monitors on real ports: an embedded runtime served by uvicorn in a thread (SSE and browser
tests), and `permitwatch run` as a subprocess that can be killed (durability and fault tests)."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import orjson
import uvicorn
from fastapi import FastAPI

from permitwatch.alerts.clock import WorkingCalendar
from permitwatch.alerts.engine import Engine
from permitwatch.api.auth import TokenFile, new_token
from permitwatch.models.events import parse_event
from permitwatch.models.settings import RuleSettings
from permitwatch.streams.simulation.sample_catalog import SAMPLE_CATALOG
from permitwatch.streams.store import Store


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(app: FastAPI, port: int) -> Iterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


ROOT = Path(__file__).resolve().parent.parent


class Server:
    """`permitwatch run` on a simulated clock at the start of the sample log, so the events are
    current (not months late against the real date); the log runs ahead of that clock, which a
    large future-skew allowance admits."""

    def __init__(self, data: Path, port: int, tokens: Path):
        catalog = data / "catalog.json"
        catalog.write_bytes(orjson.dumps(SAMPLE_CATALOG.model_dump(mode="json")))
        self.args = [sys.executable, "-m", "permitwatch", "run", "--data-dir", str(data), "--port", str(port),
                     "--tokens-file", str(tokens), "--catalog", str(catalog),
                     "--clock-start", "2026-03-02T08:00:00+08:00", "--clock-speed", "1"]
        self.env = {**os.environ, "PERMITWATCH_MAX_FUTURE_SKEW_SECONDS": str(400 * 86400)}
        self.url = f"http://127.0.0.1:{port}"
        self.log = data / "server.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            # SIGINT as a terminal gives it: a test run started in the background (`cmd &` in a
            # script) hands its children SIGINT ignored, and the server never saw ^C.
            self.process = subprocess.Popen(self.args, cwd=ROOT, stdout=log, stderr=log, env=self.env,
                                            preexec_fn=_sigint_default)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            time.sleep(0.2)
        raise RuntimeError("server not ready in 60 s")

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def loader_tokens(directory: Path) -> tuple[str, Path]:
    """A token that may send events and read alerts, and the tokens file holding its hash."""
    token, entry = new_token("loader", ["ingest", "operator"])
    path = directory / "tokens.json"
    path.write_bytes(orjson.dumps(TokenFile(tokens=[entry]).model_dump()))
    return token, path


def post(url: str, token: str, lines: list[bytes]) -> dict | None:
    request = urllib.request.Request(f"{url}/events", data=b"\n".join(lines), method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return orjson.loads(response.read())
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, OSError):
        return None  # the server died under the request (even halfway through its answer): not acknowledged


def replayed_records(database: Path) -> list[tuple[str, str]]:
    """What the journal yields when replayed at its recorded clocks: the only correct output."""
    store = Store(database)
    engine = Engine(SAMPLE_CATALOG.by_code(), WorkingCalendar(), RuleSettings())
    out = []
    for row in store.journal_after(0):
        out += engine.advance(row.clock).alerts
        out += engine.process(parse_event(row.raw)).alerts
    out += engine.advance(datetime.fromisoformat(store.meta("clock"))).alerts
    return [(a.alert_id, a.status) for a in out]


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
