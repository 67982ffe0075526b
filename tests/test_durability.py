"""kill -9 at any moment: nothing accepted is lost, nothing is emitted twice (a real subprocess)."""

from __future__ import annotations

import random
import signal
import threading
from datetime import datetime
from pathlib import Path

import orjson
import pytest

from permitwatch.streams.simulation.city import CitySimulator
from permitwatch.streams.store import Store
from tests.live import Server, free_port, loader_tokens, post, replayed_records


def test_kill_9_mid_stream_loses_nothing_and_duplicates_nothing(tmp_path):
    # Kill during three different batches, a few milliseconds into each request.
    kill_during_ingest(tmp_path, [(5, 0.005), (12, 0.03), (20, 0.06)])


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5))
def test_kill_9_at_random_moments_loses_nothing_and_duplicates_nothing(tmp_path, seed):
    rng = random.Random(seed)
    batches = sorted(rng.sample(range(2, 25), 8))
    kill_during_ingest(tmp_path, [(number, rng.uniform(0.0, 0.25)) for number in batches])


def kill_during_ingest(tmp_path: Path, kills: list[tuple[int, float]]) -> None:
    """Post the batches in order, killing the server `delay` seconds into each chosen batch and
    restarting it; then resend what was never acknowledged and compare with the journal's replay."""
    token, tokens = loader_tokens(tmp_path)
    server = Server(tmp_path, free_port(), tokens)
    sim = CitySimulator(seed=3, violation_rate=0.3, cases_per_day=120)
    lines = [raw for _, raw in sim.events(cases=1500)]
    batches = [lines[i:i + 400] for i in range(0, len(lines), 400)]
    acknowledged: set[int] = set()
    killed = 0
    try:
        server.start()
        for kill_at, delay in kills:
            for number in range(len(batches)):
                if number in acknowledged:
                    continue
                killer = threading.Timer(delay, server.kill) if number == kill_at else None
                if killer:
                    killer.start()
                answer = post(server.url, token, batches[number])
                if killer:
                    killer.join()
                    killed += 1
                    if answer is not None:
                        acknowledged.add(number)
                    break
                assert answer is not None
                acknowledged.add(number)
            server.start()
            journal = {row[0] for row in Store(tmp_path / "permitwatch.sqlite").reader.execute(
                "SELECT event_id FROM journal")}
            for number in acknowledged:
                assert {orjson.loads(raw)["id"] for raw in batches[number]} <= journal, f"batch {number} lost"
        assert killed == len(kills)
        for batch in batches:  # the client resends whatever it was not told was accepted
            assert post(server.url, token, batch) is not None
        server.stop()
        store = Store(tmp_path / "permitwatch.sqlite")
        assert store.count("journal") == len(lines)
        stored = [tuple(r) for r in store.reader.execute("SELECT alert_id, status FROM alerts ORDER BY seq")]
        assert stored == replayed_records(tmp_path / "permitwatch.sqlite")
        assert len(stored) > 100
    finally:
        server.stop()


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_shuts_down_like_sigint_with_the_checkpoint(tmp_path, stop):
    """`docker stop` and Kubernetes send SIGTERM: uvicorn re-raised it with the default handler
    after its graceful shutdown and the process died before the shutdown checkpoint (exit 143),
    so the next start replayed the whole journal."""
    token, tokens = loader_tokens(tmp_path)
    server = Server(tmp_path, free_port(), tokens)
    server.start()
    lines = [raw for _, raw in CitySimulator(seed=4).events(cases=50)]
    assert post(server.url, token, lines)["accepted"] == len(lines)
    checkpoint = tmp_path / "permitwatch.checkpoint"
    assert not checkpoint.exists()
    server.process.send_signal(stop)
    assert server.process.wait(timeout=30) == (0 if stop == signal.SIGTERM else 130)
    assert checkpoint.exists()
    server.start()
    server.stop()
    assert f"{len(lines)}, 0 rows replayed" in server.log.read_text().replace("checkpoint at journal ", "")


def test_send_cut_short_says_what_was_done_and_resumes_where_it_stopped(tmp_path, monkeypatch, capsys):
    from permitwatch.api import client as sender
    from permitwatch.api.cli import main

    token, tokens = loader_tokens(tmp_path)
    server = Server(tmp_path, free_port(), tokens)
    server.start()
    lines = [raw for _, raw in CitySimulator(seed=6).events(cases=60)]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    real_post, calls = sender._post, []

    def post_then_die(*args):
        answer = real_post(*args)
        calls.append(1)
        if len(calls) == 3:
            server.kill()
        return answer

    monkeypatch.setattr(sender, "_post", post_then_die)
    send = ["send", str(events), "--url", server.url, "--token", token, "--batch", "100"]
    assert main(send) == 2
    err = capsys.readouterr().err
    assert "cannot reach" in err and "Traceback" not in err
    assert f"accepted 300, duplicates 0, rejected 0, not sent {len(lines) - 300} of {len(lines)}" in err
    assert "--resume" in err and (tmp_path / "events.jsonl.sent").read_text() == "300"
    server.start()
    assert main([*send, "--resume"]) == 0
    assert f"accepted {len(lines) - 300}, duplicates 0, rejected 0, not sent 0" in capsys.readouterr().out
    assert not (tmp_path / "events.jsonl.sent").exists()
    server.stop()
    assert Store(tmp_path / "permitwatch.sqlite").count("journal") == len(lines)


def test_send_refuses_history_unless_told_and_names_import(tmp_path, capsys):
    from permitwatch.api.cli import main

    token, tokens = loader_tokens(tmp_path)
    server = Server(tmp_path, free_port(), tokens)
    server.start()
    old = tmp_path / "last-year.jsonl"
    old.write_bytes(b"\n".join(raw for _, raw in CitySimulator(seed=6, start=datetime(2025, 3, 3).date())
                               .events(cases=20)) + b"\n")
    assert main(["send", str(old), "--url", server.url, "--token", token]) == 2
    err = capsys.readouterr().err
    assert "older than the monitor's clock" in err and "permitwatch import" in err and "Nothing was sent" in err
    assert main(["send", str(old), "--url", server.url, "--token", token, "--history-ok"]) == 0
    assert "warning:" in capsys.readouterr().out
    server.stop()
