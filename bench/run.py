"""The embedded runtime under load, through its real HTTP server (a subprocess).

    python -m bench.run [--events N] [--deadlines N]

1. Durable ingest: the generated city log posted as NDJSON batches of 1,000 events; each batch is
   journalled, judged and committed before the server answers. Prints events/s.
2. Deadline firing: cases whose deadlines all fall at one midnight (the realistic burst: legal
   days end together), on a clock started just before it; prints p50/p99 of (alert stored −
   deadline instant)."""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import orjson

from bench.common import accepted_case, generated_log, machine, percentiles
from permitwatch.api.auth import TokenFile, new_token
from permitwatch.streams.simulation.sample_catalog import SAMPLE_CATALOG

ROOT = Path(__file__).resolve().parent.parent


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, data: Path, clock_start: str, speed: float = 1.0, synchronous: str = "FULL"):
        data.mkdir(parents=True, exist_ok=True)
        self.token, entry = new_token("bench", ["admin"])
        (data / "tokens.json").write_bytes(orjson.dumps(TokenFile(tokens=[entry]).model_dump()))
        (data / "catalog.json").write_bytes(orjson.dumps(SAMPLE_CATALOG.model_dump(mode="json")))
        self.port = _port()
        self.data = data
        args = [sys.executable, "-m", "permitwatch", "run", "--data-dir", str(data), "--port", str(self.port),
                "--catalog", str(data / "catalog.json"), "--clock-start", clock_start, "--clock-speed", str(speed)]
        env = {**os.environ, "PERMITWATCH_MAX_FUTURE_SKEW_SECONDS": str(400 * 86400),
               "PERMITWATCH_SYNCHRONOUS": synchronous}
        self.log = (data / "server.log").open("wb")
        self.process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=self.log)
        for _ in range(300):
            try:
                if self.request("GET", "/readyz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError((data / "server.log").read_text())

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        connection.request(method, path, body=body, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/x-ndjson"})
        response = connection.getresponse()
        return response.status, response.read()

    def latencies(self, rule: str, due: datetime) -> list[float]:
        """Seconds from `due` to the storing of each `rule` alert, sorted."""
        found: list[float] = []
        cursor = None
        while True:
            page = orjson.loads(self.request("GET", f"/alerts?rule={rule}&limit=500"
                                             + (f"&cursor={cursor}" if cursor else ""))[1])
            found += [(datetime.fromisoformat(v["emitted_at"]) - due).total_seconds() for v in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                return sorted(found)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)
        self.log.close()


def durable_ingest(events: int, batch: int = 1000, synchronous: str = "FULL") -> float:
    lines = generated_log(max(events, 100_000)).read_bytes().splitlines()[:events]
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp), "2026-03-02T08:00:00+08:00", synchronous=synchronous)
        try:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
            headers = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/x-ndjson"}
            started = time.perf_counter()
            for start in range(0, len(lines), batch):
                connection.request("POST", "/events", body=b"\n".join(lines[start:start + batch]), headers=headers)
                response = connection.getresponse()
                response.read()
                if response.status != 202:
                    raise RuntimeError(f"batch at {start}: {response.status}")
            elapsed = time.perf_counter() - started
        finally:
            server.stop()
    return len(lines) / elapsed


def deadline_latency(cases: int) -> tuple[float, float, int]:
    """Cases of an on-the-spot item accepted on 2026-03-03 and never decided: PW-009 is due at
    2026-03-04 00:00 for all of them. The clock starts 20 s before."""
    item = next(i for i in SAMPLE_CATALOG.items if i.on_the_spot)
    submitted = datetime.fromisoformat("2026-03-03T09:00:00+08:00")
    lines = [line for n in range(cases) for line in accepted_case(f"BENCH-{n:06d}", item, submitted)]
    due = datetime.fromisoformat("2026-03-04T00:00:00+08:00")
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp), "2026-03-03T23:59:40+08:00")
        try:
            for start in range(0, len(lines), 1000):
                status, body = server.request("POST", "/events", b"\n".join(lines[start:start + 1000]))
                if status != 202:
                    raise RuntimeError(body)
            deadline = time.monotonic() + 120
            found: list[float] = []
            while time.monotonic() < deadline and len(found) < cases:
                time.sleep(1)
                found = server.latencies("PW-009", due)
        finally:
            server.stop()
    if not found:
        raise RuntimeError("no deadline fired")
    return (*percentiles(found), len(found))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--deadlines", type=int, default=5_000)
    args = parser.parse_args(argv)
    rate = durable_ingest(args.events)
    rate_normal = durable_ingest(args.events, synchronous="NORMAL")
    p50, p99, fired = deadline_latency(args.deadlines)
    print(f"machine             {machine()}")
    print(f"durable ingest      {rate:,.0f} events/s  ({args.events:,} events, HTTP NDJSON batches of 1,000, "
          f"synchronous=FULL: fsync per batch)")
    print(f"                    {rate_normal:,.0f} events/s  (synchronous=NORMAL: survives a process crash, "
          f"not a power cut)")
    print(f"deadline firing     p50 {p50:.3f} s, p99 {p99:.3f} s  ({fired:,} deadlines at one midnight)")
    return {"durable_events_per_s": rate, "durable_normal_events_per_s": rate_normal, "deadline_p50_s": p50,
            "deadline_p99_s": p99}


if __name__ == "__main__":
    main()
