"""`permitwatch run --demo` stopped and started again, then `permitwatch demo check`: the cases the
restart cut short are not scored after the cut (their later events were never sent)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta

from permitwatch.models.common import LEGAL_TZ
from permitwatch.streams.clocks import DemoClock
from tests.live import ROOT, free_port


def run_demo_for(data, seconds: float) -> None:
    port = free_port()
    with (data / "demo.log").open("ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "permitwatch", "run", "--demo", "--data-dir", str(data),
                                    "--port", str(port), "--clock-speed", "60000"], cwd=ROOT, stdout=log, stderr=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                break
        except OSError:
            time.sleep(0.2)
    time.sleep(seconds)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0


def test_a_restarted_demo_still_scores_exactly(tmp_path):
    run_demo_for(tmp_path, 8)
    run_demo_for(tmp_path, 8)
    done = subprocess.run([sys.executable, "-m", "permitwatch", "demo", "check", "--data-dir", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()[2:]]
    assert len(rows) >= 8 and sum(int(row[1]) for row in rows) > 50, done.stdout
    assert all(row[4] == "1.000" and row[5] == "1.000" for row in rows), done.stdout


def test_the_simulated_clock_runs_in_legal_time_from_its_start():
    """Its instants are compared with every event's (in legal time): one time zone for both."""
    start = datetime.fromisoformat("2026-03-02T00:30:00+00:00")
    now = DemoClock(start, 1.0).now()  # at real speed: a slow machine cannot move it minutes on
    assert now.tzinfo is LEGAL_TZ and now.hour == 8 and start <= now < start + timedelta(minutes=5)
    assert DemoClock(start, 1440.0).real_seconds(timedelta(days=1)) == 60.0


def test_a_batch_the_database_did_not_take_is_sent_again_before_its_ground_truth(monkeypatch):
    """Dropped, its cases would lack those events for good and the check would score the alerts
    they miss against the engine."""
    import asyncio
    import io
    from types import SimpleNamespace

    from permitwatch.streams.port import RawInput
    from permitwatch.streams.simulation import demo
    from permitwatch.streams.store import StoreError

    monkeypatch.setattr(demo, "RESEND_SECONDS", 0.01)
    taken = []
    failures = iter([StoreError("disk full"), StoreError("disk full")])

    def ingest(raws):
        failure = next(failures, None)
        if failure is not None:
            raise failure
        taken.append(raws)

    expected = SimpleNamespace(to_json=lambda: {"case": "SZ-1"})
    simulator = SimpleNamespace(ground_truth=[expected], namespace="")
    feeder = demo.DemoFeeder(SimpleNamespace(ingest=ingest), None, simulator, None)
    truth = io.BytesIO()
    at = datetime(2026, 3, 2, 9, tzinfo=LEGAL_TZ)
    batch = [(at, RawInput("demo", b"{}"))]
    assert asyncio.run(feeder._deliver(batch, truth, 0)) == 1
    assert taken == [[batch[0][1]]]
    assert truth.getvalue().splitlines() == [b'{"case":"SZ-1"}', b'{"run":"","sent_through":"%s"}' % at.isoformat().encode()]
