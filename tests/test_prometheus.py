"""Debian's Prometheus scraping a live monitor with the shipped alerting rules: none fires on the
healthy demo, and each fires when its fault is induced.

The rules are deploy/prometheus/rules.yml with two changes, both made here so that the
expressions stay the shipped ones: every `for:` lasts a 300th as long (a minute is 200 ms; the
scrapes and evaluations come every 250 ms), and the time-of-day functions see a Monday at 10:00
in Shanghai (whether the office-hours window itself is right is promtool's test, on a controlled
clock). Ranges (`[15m]`, `offset 1d`) are kept: what they see is the short history of a
monitor that has just started, which every deployment goes through."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
import yaml

from permitwatch.api import compose
from permitwatch.api.compose import Embedded
from permitwatch.streams.clocks import ManualClock
from permitwatch.streams.embedded.monitor import EmbeddedMonitor
from permitwatch.streams.settings import Settings
from tests.embedded import write_catalog
from tests.factory import CaseEvents, moment
from tests.live import free_port, serving
from tests.tools import debian_binary

RULES = Path(__file__).resolve().parent.parent / "deploy" / "prometheus" / "rules.yml"
SPEED = 300
INTERVAL = "250ms"
OFFICE_HOURS = int(datetime(2026, 11, 30, 2, 0, tzinfo=UTC).timestamp())  # Monday 10:00 in Shanghai
DURATION = re.compile(r"(\d+)([smhd])")
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def shortened(duration: str) -> str:
    seconds = sum(int(n) * SECONDS[unit] for n, unit in DURATION.findall(duration))
    return f"{seconds * 1000 // SPEED}ms"


def shortened_rules() -> dict:
    """The shipped rules, `for:` shortened and the time of day pinned."""
    shipped = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    pinned = 0
    for group in shipped["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = shortened(rule["for"])
            expr = rule["expr"]
            for function in ("hour", "day_of_week"):
                expr = expr.replace(f"{function}()", f"{function}(vector({OFFICE_HOURS}))")
            pinned += expr != rule["expr"]
            rule["expr"] = expr
    assert pinned, "no rule reads the time of day any more: drop the pinning"
    return shipped


@pytest.fixture(scope="module")
def prometheus_binary() -> str:
    return debian_binary("prometheus", "prometheus")


class Prometheus:
    def __init__(self, url: str):
        self.url = url

    def alerts(self) -> list[dict]:
        return httpx.get(f"{self.url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]

    def firing(self) -> dict[str, dict]:
        return {a["labels"]["alertname"]: a["labels"] for a in self.alerts() if a["state"] == "firing"}

    def wait_scraped(self) -> None:
        """Until the target has been scraped: what a counter counts before Prometheus first
        sees it is lost to `increase()` whatever the exporter does."""
        query = f"{self.url}/api/v1/query"
        wait_for(lambda: httpx.get(query, params={"query": "permitwatch_info"}, timeout=5).json()["data"]["result"])

    def wait_firing(self, *names: str, seconds: float = 30) -> dict[str, dict]:
        deadline = time.monotonic() + seconds
        while True:
            firing = self.firing()
            if set(names) <= set(firing):
                return firing
            if time.monotonic() > deadline:
                raise AssertionError(f"not firing after {seconds} s: {set(names) - set(firing)}; "
                                     f"alerts: {self.alerts()}")
            time.sleep(0.25)

    def wait_quiet(self, name: str, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while any(a["labels"]["alertname"] == name for a in self.alerts()):
            assert time.monotonic() < deadline, f"{name} still active after {seconds} s"
            time.sleep(0.25)


@contextmanager
def prometheus(binary: str, directory: Path, target: str) -> Iterator[Prometheus]:
    directory.mkdir()
    (directory / "rules.yml").write_text(yaml.safe_dump(shortened_rules(), allow_unicode=True), encoding="utf-8")
    (directory / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": INTERVAL, "scrape_timeout": INTERVAL, "evaluation_interval": INTERVAL},
        "rule_files": [str(directory / "rules.yml")],
        "scrape_configs": [{"job_name": "permitwatch", "static_configs": [{"targets": [target]}]}],
    }), encoding="utf-8")
    port = free_port()
    log = directory / "prometheus.log"
    with log.open("wb") as output:
        process = subprocess.Popen([binary, f"--config.file={directory / 'prometheus.yml'}",
                                    f"--storage.tsdb.path={directory / 'data'}",
                                    f"--web.listen-address=127.0.0.1:{port}"],
                                   stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.1)
        yield Prometheus(url)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for(condition: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


class Watch:
    """Records, from a thread, every alert a Prometheus shows firing."""

    def __init__(self, server: Prometheus):
        self.server = server
        self.fired: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self.fired |= set(self.server.firing())

    def stop(self) -> set[str]:
        self._stop.set()
        self._thread.join()
        return self.fired


@contextmanager
def healthy_demo(binary: str, directory: Path) -> Iterator[tuple[EmbeddedMonitor, Watch]]:
    """`permitwatch run --demo` (a day per minute from 2026-03-02 08:30), scraped from its start."""
    embedded = compose.embedded(Settings(data_dir=directory / "demo", demo=True))
    port = free_port()
    try:
        with serving(embedded.app, port), prometheus(binary, directory / "demo-prometheus",
                                                     f"127.0.0.1:{port}") as server:
            watch = Watch(server)
            try:
                yield embedded.monitor, watch
            finally:
                watch.stop()
    finally:
        embedded.close()


def test_alerts_fire_on_their_faults_and_not_on_the_healthy_demo(tmp_path, prometheus_binary, monkeypatch):
    """Two monitors, each scraped by its own Prometheus (the rules sum over instances). The demo
    runs meanwhile, to past its first midnight's deadlines: its simulated clock must not look
    stalled, nor its deadlines late, nor anything else of the monitor wrong. (The supervision
    alerts may fire on it: the simulated city commits violations.) The other monitor, on a manual
    clock, is made to fail in turn, and each alert must fire when its fault is in and not before
    (all but PermitwatchStoreGrowing, whose fault is a database heading for 200 GB in a week)."""
    operations = {rule["alert"] for group in shortened_rules()["groups"] for rule in group["rules"]
                  if rule["labels"]["audience"] == "sre"}
    with healthy_demo(prometheus_binary, tmp_path) as (demo, watch):
        induce_each_fault(tmp_path, prometheus_binary, monkeypatch)
        wait_for(lambda: demo.clock.now() > moment("2026-03-03 01:00"), seconds=60)
        fired = watch.stop()
    assert not fired & operations, f"on the healthy demo: {fired & operations}"
    assert demo.metrics.registry.get_sample_value("permitwatch_deadline_firing_lag_seconds_count") > 0


def induce_each_fault(tmp_path: Path, binary: str, monkeypatch) -> None:
    clock = ManualClock(moment("2026-03-02 09:00"))
    (tmp_path / "monitor").mkdir()
    embedded: Embedded = compose.embedded(
        Settings(data_dir=tmp_path / "monitor", catalog=write_catalog(tmp_path / "monitor")), clock)
    monitor = embedded.monitor
    headers = {"Authorization": f"Bearer {embedded.new_tokens['ingest']}", "Content-Type": "application/x-ndjson"}
    port = free_port()
    try:
        with prometheus(binary, tmp_path / "prometheus", f"127.0.0.1:{port}") as server:
            with serving(embedded.app, port) as url:

                def post(lines: list[bytes]) -> httpx.Response:
                    return httpx.post(f"{url}/events", content=b"\n".join(lines), headers=headers, timeout=30)

                # A monitor that never received an event; bad input; a bug; a full disk.
                server.wait_scraped()
                post([b'{"specversion": "1.0", "id": "x"}'] * 25)
                original = monitor.engine.process

                def failing(event, *args, **kwargs):
                    if event.subject == "SZ-POISON":
                        raise RuntimeError("induced")
                    return original(event, *args, **kwargs)

                monkeypatch.setattr(monitor.engine, "process", failing)  # the rebuilt engine is sound
                post([orjson.dumps(CaseEvents("SZ-POISON").submitted("2026-03-02 08:00").model_dump(mode="json"))])

                def disk_full(*args):
                    raise OSError(28, "No space left on device")

                monkeypatch.setattr(monitor, "_write_checkpoint", disk_full)
                monitor.try_checkpoint()
                firing = server.wait_firing("PermitwatchNoEventsInOfficeHours", "PermitwatchDeadLetters",
                                            "PermitwatchEngineErrors", "PermitwatchCheckpointFailing")
                assert set(firing) == {"PermitwatchNoEventsInOfficeHours", "PermitwatchDeadLetters",
                                       "PermitwatchEngineErrors", "PermitwatchCheckpointFailing"}
                assert firing["PermitwatchDeadLetters"]["reason"] == "missing_type"

                # 202 cases accepted, 12 of them without a receipt (red cards); then the scheduler
                # stalls while the clock passes their 预警 day.
                events = []
                for n in range(202):
                    case = CaseEvents(f"SZ-{n:03}")
                    events += [case.submitted("2026-03-02 08:30"),
                               case.accepted("2026-03-02 08:45", receipt_no="" if n < 12 else "R-1")]
                assert post([orjson.dumps(e.model_dump(mode="json")) for e in events]).json()["accepted"] == 404
                monitor.tick = lambda: None  # the scheduler is stuck
                clock.set(moment("2026-03-26 00:10"))
                firing = server.wait_firing("PermitwatchRedCardsRising", "PermitwatchClockStalled")
                assert "PermitwatchDeadlineLag" not in firing and "PermitwatchManyCasesInWarning" not in firing
                server.wait_quiet("PermitwatchNoEventsInOfficeHours")

                # The scheduler recovers: 202 预警 fired ten minutes late.
                del monitor.tick
                embedded.scheduler.poke()
                # The warning-window gauge is counted at most every 10 s.
                server.wait_firing("PermitwatchDeadlineLag", "PermitwatchManyCasesInWarning", seconds=60)
                server.wait_quiet("PermitwatchClockStalled")
            server.wait_firing("PermitwatchDown")
    finally:
        monkeypatch.undo()
        embedded.close()

