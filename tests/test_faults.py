"""Faults a supervision centre will meet: the disk fills, the data directory is read-only, the
clock jumps, the holiday calendar changes under open deadlines, deliveries repeat and reorder.
What must hold: a clear error, no corruption, nothing accepted lost, nothing emitted twice, and
recovery once the cause is gone."""

from __future__ import annotations

import random
import resource
import shutil
import sqlite3
import subprocess
import urllib.error
import urllib.request

import orjson

from permitwatch.streams.simulation.city import CitySimulator
from permitwatch.streams.store import Store
from tests.factory import CaseEvents
from tests.live import ROOT, Server, free_port, loader_tokens, post, replayed_records
from tests.scenarios import UNTIL, final_ids, scenario


def _post_status(url: str, token: str, lines: list[bytes]) -> tuple[int, dict]:
    request = urllib.request.Request(f"{url}/events", data=b"\n".join(lines), method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, orjson.loads(error.read())


def test_a_full_disk_refuses_batches_with_503_corrupts_nothing_and_recovers_when_space_returns(tmp_path):
    """The server's files are capped with RLIMIT_FSIZE (set from outside, as `prlimit` does): a
    write past the cap fails exactly as on a full disk. Then the cap is lifted."""
    token, tokens = loader_tokens(tmp_path)
    server = Server(tmp_path, free_port(), tokens)
    lines = [raw for _, raw in CitySimulator(seed=5, violation_rate=0.3, cases_per_day=120).events(cases=1200)]
    batches = [lines[i:i + 200] for i in range(0, len(lines), 200)]
    try:
        server.start()
        assert _post_status(server.url, token, batches[0])[0] == 202
        largest = max(p.stat().st_size for p in tmp_path.glob("permitwatch.sqlite*"))
        resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE, (largest + 64 * 1024, resource.RLIM_INFINITY))
        refused = None
        for number in range(1, len(batches)):
            status, answer = _post_status(server.url, token, batches[number])
            if status != 202:
                refused = number
                break
        assert refused is not None, "the cap was never reached"
        assert status == 503, answer
        assert "cannot be written" in answer["detail"] and "retry" in answer["detail"]
        # Still full: the same answer again, and reads go on.
        assert _post_status(server.url, token, batches[refused])[0] == 503
        assert urlopen_status(f"{server.url}/healthz") == 200
        assert urlopen_status(f"{server.url}/readyz") == 503
        resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        assert urlopen_status(f"{server.url}/readyz") == 200
        for batch in batches[refused:]:
            assert _post_status(server.url, token, batch)[0] == 202
        server.stop()
        database = tmp_path / "permitwatch.sqlite"
        assert sqlite3.connect(database).execute("PRAGMA integrity_check").fetchone() == ("ok",)
        store = Store(database)
        assert store.count("journal") == len(lines)
        stored = [tuple(r) for r in store.reader.execute("SELECT alert_id, status FROM alerts ORDER BY seq")]
        assert stored == replayed_records(database) and len(stored) > 50
    finally:
        server.stop()


def urlopen_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_a_read_only_data_directory_stops_the_start_with_a_clear_message_and_no_harm(tmp_path):
    """The data directory mounted read-only (a private mount namespace, so nothing else sees it):
    the server refuses to start, says why, and the database is intact for the next start."""
    token, tokens = loader_tokens(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    server = Server(data, free_port(), tokens)
    server.start()
    assert post(server.url, token, [raw for _, raw in CitySimulator(seed=2).events(cases=50)]) is not None
    server.stop()
    before = (data / "permitwatch.sqlite").read_bytes()
    assert shutil.which("unshare"), "util-linux's unshare is needed to mount the directory read-only"
    command = " ".join(f"'{a}'" for a in server.args)
    finished = subprocess.run(
        ["unshare", "--mount", "sh", "-c", f"mount --bind -o ro '{data}' '{data}' && exec {command}"],
        cwd=ROOT, env=server.env, capture_output=True, text=True, timeout=60)
    assert finished.returncode != 0
    assert "read-only" in finished.stderr.lower() or "cannot be written" in finished.stderr, finished.stderr
    assert "Traceback" not in finished.stderr, finished.stderr
    assert (data / "permitwatch.sqlite").read_bytes() == before
    server.start()
    assert Store(data / "permitwatch.sqlite").count("journal") > 0
    server.stop()


def test_the_clock_jumping_forward_fires_each_deadline_once_and_jumping_back_changes_nothing(runtimes, tmp_path):
    runtime = runtimes(tmp_path, now="2026-03-04 12:00")
    cases = [CaseEvents(f"SZ-JUMP-{n}") for n in range(3)]
    runtime.post([e for n, c in enumerate(cases) for e in (c.submitted(f"2026-03-0{2 + n} 09:00"),
                                                           c.accepted(f"2026-03-0{2 + n} 10:00"))])
    runtime.advance("2026-04-20 12:00")  # a VM resumed after seven weeks: every deadline on the way
    fired = alerts_of(runtime)
    overdue = [a for a in fired if a["rule"] == "PW-001"]
    assert len(overdue) == 3 and len({a["alert_id"] for a in overdue}) == 3
    assert [a["detected_at"] for a in overdue] == sorted(a["detected_at"] for a in overdue)
    assert all(a["detected_at"] == a["deadline"]["instant"] < "2026-04-03" for a in overdue)  # not at the jump
    runtime.advance("2026-04-10 12:00")  # NTP pulls the clock back ten days
    late = CaseEvents("SZ-JUMP-LATE")
    assert runtime.post([late.submitted("2026-04-10 11:00"), late.accepted("2026-04-10 11:30")]).status_code == 202
    runtime.advance("2026-04-21 12:00")
    assert alerts_of(runtime)[:len(fired)] == fired
    assert len([a for a in alerts_of(runtime) if a["rule"] == "PW-001"]) == 3


def alerts_of(runtime) -> list[dict]:
    rows = runtime.embedded.monitor.store.reader.execute("SELECT record FROM alerts ORDER BY seq").fetchall()
    return [orjson.loads(row[0]) for row in rows]


def test_a_calendar_change_moves_open_deadlines_both_ways_and_survives_a_restart(runtimes, tmp_path):
    """20 working days after Monday 2026-03-02 end on Monday 03-30. Saturday 03-14 made a workday
    ends them on Friday 03-27 (already passed on Saturday 03-28: the alert fires at once); a second
    file (calendar files add up, by version) making Monday 03-16 a holiday moves them back to 03-30
    (not passed: the alert is retracted)."""
    runtime = runtimes(tmp_path, now="2026-03-02 12:00")
    case = CaseEvents("SZ-CAL-1")
    runtime.post([case.submitted("2026-03-02 09:00"), case.accepted("2026-03-02 10:00")])
    runtime.advance("2026-03-28 10:00")
    assert not [a for a in alerts_of(runtime) if a["rule"] == "PW-001"]
    admin = runtime.auth("admin")
    earlier = b'{"version": "sz-2026-swap", "holidays": [], "workdays": ["2026-03-14"]}'
    assert runtime.client.put("/calendar", content=earlier, headers=admin).status_code == 200
    overdue = [a for a in alerts_of(runtime) if a["rule"] == "PW-001"]
    assert [(a["status"], a["deadline"]["last_day"]) for a in overdue] == [("active", "2026-03-27")]
    later = b'{"version": "sz-2026-closure", "holidays": ["2026-03-16"], "workdays": []}'
    assert runtime.client.put("/calendar", content=later, headers=admin).status_code == 200
    overdue = [a for a in alerts_of(runtime) if a["rule"] == "PW-001"]
    assert [a["status"] for a in overdue] == ["active", "retracted"]
    assert "calendar" in overdue[-1]["retraction"]["reason"]["en"].lower()
    records = alerts_of(runtime)
    runtime.stop()
    again = runtimes(tmp_path, now="2026-03-28 10:00")
    assert alerts_of(again) == records
    again.advance("2026-04-01 10:00")
    overdue = [a for a in alerts_of(again) if a["rule"] == "PW-001"]
    assert overdue[-1]["status"] == "active" and overdue[-1]["deadline"]["last_day"] == "2026-03-30"


def test_repeated_and_reordered_deliveries_over_http_give_the_alerts_of_the_log(runtimes, tmp_path):
    events = [e for seed in range(5) for e in scenario(seed, cases=6)]
    runtime = runtimes(tmp_path, now=UNTIL)
    rng = random.Random(7)
    deliveries = [e for e in events for _ in range(rng.choice([1, 1, 2, 3]))]
    rng.shuffle(deliveries)
    for start in range(0, len(deliveries), 25):
        assert runtime.post(deliveries[start:start + 25]).status_code == 202
    runtime.advance(UNTIL)
    held = {a["alert_id"] for a in alerts_of(runtime) if a["rule"] != "PW-018"}
    final = {}
    for alert in alerts_of(runtime):
        final[alert["alert_id"]] = alert["status"]
    held = {i for i in held if final[i] == "active"}
    assert held == final_ids(events)
    assert runtime.embedded.monitor.store.count("journal") == len({e.id for e in events})



def test_a_checkpoint_that_cannot_be_written_fails_no_batch_and_is_tried_again(runtimes, tmp_path):
    """The periodic checkpoint is written by a forked child after a batch is committed; a disk too
    full for it must not turn that batch's 202 into an error. (Its temporary file is made a
    directory: a real OSError.)"""
    runtime = runtimes(tmp_path, now="2026-03-02 12:00")
    monitor = runtime.embedded.monitor
    monitor.options.checkpoint_every_events = 1
    blocker = monitor.checkpoint_path.with_suffix(".partial")
    blocker.mkdir()
    case = CaseEvents("SZ-CKPT-1")
    assert runtime.post([case.submitted("2026-03-02 09:00")]).status_code == 202
    monitor.wait_for_checkpoint()
    assert not monitor.checkpoint_path.exists()
    assert monitor.metrics.checkpoint_failures._value.get() == 1
    blocker.rmdir()
    assert runtime.post([case.accepted("2026-03-02 10:00")]).status_code == 202
    monitor.wait_for_checkpoint()
    assert monitor.checkpoint_path.exists()
    assert monitor.store.count("journal") == 2
