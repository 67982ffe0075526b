"""The embedded runtime: HTTP ingest → journal → engine → stored alerts, dead letters, restarts."""

from __future__ import annotations

from datetime import timedelta

import orjson

from permitwatch.streams.store import Store
from tests.factory import CaseEvents, moment


def test_ingest_journal_alert_end_to_end_over_http(tmp_path, runtimes):
    runtime = runtimes(tmp_path)
    c = CaseEvents()
    runtime.clock.set(runtime.clock.now().replace(day=3, hour=12))
    answer = runtime.post([c.submitted("2026-03-02 09:00"), c.accepted("2026-03-03 10:00", receipt_no="")])
    assert answer.status_code == 202 and answer.json() == {"accepted": 2, "duplicates": 0, "rejected": [], "warnings": []}
    page = runtime.client.get("/alerts", headers=runtime.auth()).json()
    assert [item["alert"]["rule"] for item in page["items"]] == ["PW-007"]
    store = runtime.embedded.monitor.store
    assert store.count("journal") == 2
    runtime.advance("2026-04-01 00:00:01")  # the decision deadline passes with no event
    rules = {item["alert"]["rule"] for item in runtime.client.get("/alerts", headers=runtime.auth()).json()["items"]}
    assert "PW-001" in rules


def test_duplicates_are_accepted_idempotently(tmp_path, runtimes):
    runtime = runtimes(tmp_path)
    c = CaseEvents()
    events = [c.submitted("2026-03-02 07:00"), c.accepted("2026-03-02 07:30")]
    assert runtime.post(events).json()["accepted"] == 2
    assert runtime.post(events).json() == {"accepted": 0, "duplicates": 2, "rejected": [], "warnings": []}
    assert runtime.embedded.monitor.store.count("journal") == 2


def test_source_and_id_identify_an_event_across_cases_and_a_conflict_is_refused(tmp_path, runtimes):
    """EVENTS.md: the same source and id with other content (another subject, another officer) is
    a conflict, dead-lettered with the reason; the same id from another source is another event."""
    runtime = runtimes(tmp_path)
    a, b = CaseEvents("SZ-A"), CaseEvents("SZ-B")
    first = a.submitted("2026-03-02 07:00")
    assert runtime.post([first]).json()["accepted"] == 1
    reused = b.submitted("2026-03-02 07:10", event_id=first.id)  # same source and id, another case
    elsewhere = CaseEvents("SZ-C").raw("application.submitted", "2026-03-02 07:20", event_id=first.id,
                                       item_code="ITEM-STD", department="D-MARKET", applicant_id="x",
                                       channel="window", officer="o-1")
    elsewhere["source"] = "/another/system"
    body = b"\n".join([orjson.dumps(reused.model_dump(mode="json")), orjson.dumps(elsewhere)])
    answer = runtime.client.post("/events", content=body, headers={**runtime.auth("ingest"),
                                                                  "Content-Type": "application/x-ndjson"}).json()
    assert answer["accepted"] == 1 and [r["category"] for r in answer["rejected"]] == ["conflicting_duplicate"]
    assert "case SZ-A" in answer["rejected"][0]["reason"]
    assert runtime.post([first]).json()["duplicates"] == 1
    store = runtime.embedded.monitor.store
    assert store.count("journal") == 2 and store.count("dead_letters") == 1


def test_a_journal_that_keyed_events_by_id_alone_is_migrated(tmp_path, runtimes):
    import sqlite3

    runtime = runtimes(tmp_path)
    c = CaseEvents()
    submitted, accepted = c.submitted("2026-03-02 07:00"), c.accepted("2026-03-02 07:30")
    assert runtime.post([submitted, accepted]).json()["accepted"] == 2
    runtime.stop()
    database = tmp_path / "permitwatch.sqlite"
    database.with_suffix(".checkpoint").unlink()  # the engine rebuilt from the journal alone
    with sqlite3.connect(database) as old:  # an event with NaN, which journals of then could take
        old.execute("UPDATE journal SET raw = ? WHERE seq = 2", (orjson.dumps(
            accepted.model_dump(mode="json"))[:-1] + b', "zzext": NaN}',))
    with sqlite3.connect(database) as old:  # the journal as it was before 2026-11-30
        old.executescript("""
            ALTER TABLE journal RENAME TO new_journal; DROP INDEX journal_case;
            CREATE TABLE journal (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, event_id TEXT UNIQUE, case_id TEXT,
                type TEXT, time TEXT, clock TEXT NOT NULL, received_at TEXT NOT NULL, raw BLOB NOT NULL);
            INSERT INTO journal SELECT seq, kind, event_id, case_id, type, time, clock, received_at, raw
                FROM new_journal;
            DROP TABLE new_journal;""")
    again = runtimes(tmp_path)
    again.tokens = runtime.tokens
    assert again.post([submitted]).json()["duplicates"] == 1
    rows = again.embedded.monitor.store.reader.execute("SELECT seq, source FROM journal ORDER BY seq").fetchall()
    assert rows == [(1, "/shenzhen/test/window"), (2, "/shenzhen/test/window")]
    # The row with NaN is kept as accepted: its case is accepted after the rebuild.
    assert again.embedded.monitor.engine.book.cases.get(c.case_id).accepted is not None


def test_invalid_payloads_get_4xx_with_reasons_and_land_in_the_dead_letters(tmp_path, runtimes):
    runtime = runtimes(tmp_path)
    headers = {**runtime.auth("ingest"), "Content-Type": "application/cloudevents+json"}
    not_json = runtime.client.post("/events", content=b"{nope", headers=headers)
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["rejected"][0]["reason"]
    c = CaseEvents()
    # The event parser takes NaN in an attribute it ignores; JSON does not, nor the content digest.
    spoilt = orjson.dumps(c.raw("application.accepted", "2026-03-02 07:00"))[:-1] + b', "zzext": NaN}'
    nan = runtime.client.post("/events", content=spoilt, headers=headers)
    assert nan.status_code == 400
    assert "NaN, Infinity and numbers beyond a double's range are refused" in nan.json()["rejected"][0]["reason"]
    naive = c.raw("application.accepted", "2026-03-02 07:00")
    naive["time"] = "2026-03-02T07:00:00"
    schema = runtime.client.post("/events", content=orjson.dumps(naive), headers=headers)
    assert schema.status_code == 422
    assert schema.json()["rejected"][0]["reason"] == "time: Input should have timezone info"
    future = runtime.post([c.submitted("2026-03-09 09:00")])
    assert future.status_code == 422 and future.json()["rejected"][0]["category"] == "future_time"
    mixed = runtime.client.post("/events", content=b"{bad\n" + orjson.dumps(c.raw("application.submitted",
                                "2026-03-02 07:00", item_code="ITEM-STD", department="D", applicant_id="a",
                                channel="window", materials=[], officer="o")),
                                headers={**runtime.auth("ingest"), "Content-Type": "application/x-ndjson"})
    assert mixed.status_code == 202 and mixed.json()["accepted"] == 1 and mixed.json()["rejected"][0]["index"] == 0
    rows = runtime.embedded.monitor.store.reader.execute(
        "SELECT category, reason, raw FROM dead_letters ORDER BY seq").fetchall()
    assert [r[0] for r in rows] == ["invalid_json", "invalid_json", "schema", "future_time", "invalid_json"]
    assert rows[0][2] == b"{nope"


def test_request_limits_and_content_types(tmp_path, runtimes):
    runtime = runtimes(tmp_path, max_body_bytes=2048)
    big = runtime.client.post("/events", content=b"x" * 5000,
                              headers={**runtime.auth("ingest"), "Content-Type": "application/x-ndjson"})
    assert big.status_code == 413
    odd = runtime.client.post("/events", content=b"{}", headers={**runtime.auth("ingest"), "Content-Type": "text/csv"})
    assert odd.status_code == 415 and "application/x-ndjson" in odd.json()["detail"]


def test_restart_rebuilds_the_engine_without_emitting_again(tmp_path, runtimes):
    runtime = runtimes(tmp_path)
    c = CaseEvents()
    runtime.post([c.submitted("2026-03-02 07:00"), c.accepted("2026-03-02 07:30")])
    runtime.advance("2026-03-27 12:00")  # the statutory warning fired
    runtime.stop()
    before = Store(tmp_path / "permitwatch.sqlite").count("alerts")
    again = runtimes(tmp_path, now="2026-03-27 12:00")
    assert again.embedded.monitor.store.count("alerts") == before
    again.advance("2026-04-02 09:00")  # down or not, the overdue deadline fires once
    rules = [r[0] for r in again.embedded.monitor.store.reader.execute("SELECT rule FROM alerts ORDER BY seq")]
    assert rules.count("PW-001") == 1 and rules.count("PW-002") == 1


def test_demo_alerts_match_the_ground_truth_exactly(tmp_path, runtimes):
    """The demo pipeline on a fixed seed (fed by time, with the clock ticking in between):
    precision and recall are 1.0 for every rule."""
    from datetime import timedelta

    from permitwatch.streams.port import RawInput
    from permitwatch.streams.simulation.city import CitySimulator
    from permitwatch.streams.simulation.demo import check
    from permitwatch.streams.simulation.sample_catalog import SAMPLE_CATALOG

    runtime = runtimes(tmp_path)
    monitor = runtime.embedded.monitor
    monitor.catalog = SAMPLE_CATALOG
    monitor.engine = monitor._new_engine()
    sim = CitySimulator(seed=7, violation_rate=0.6, cases_per_day=25)
    truth = tmp_path / "truth.jsonl"
    batch, last_tick = [], None
    for moment_, raw in sim.events(cases=1500):
        if batch and moment_ - batch[-1][0] > timedelta(hours=2):
            runtime.clock.set(batch[-1][0])
            monitor.ingest([RawInput("demo", r) for _, r in batch])
            batch = []
        batch.append((moment_, raw))
        if last_tick is None or moment_ - last_tick > timedelta(hours=6):
            runtime.clock.set(moment_)
            monitor.tick()
            last_tick = moment_
    runtime.clock.set(batch[-1][0])
    monitor.ingest([RawInput("demo", r) for _, r in batch])
    truth.write_bytes(b"\n".join(orjson.dumps(e.to_json()) for e in sim.ground_truth))
    _, scores = check(monitor.store, truth)
    assert {s.rule for s in scores} == {f"PW-{n:03d}" for n in range(1, 20)}
    assert all(s.precision == 1.0 and s.recall == 1.0 for s in scores), scores


def test_a_tick_that_fires_nothing_writes_nothing(tmp_path, runtimes):
    """The scheduler ticks after every batch; a bare clock commit cost an fsync each time."""
    runtime = runtimes(tmp_path)
    c = CaseEvents()
    runtime.post([c.submitted("2026-03-02 07:00"), c.accepted("2026-03-02 07:30")])
    store = runtime.embedded.monitor.store
    written = store.meta("clock")
    runtime.advance("2026-03-03 10:00")
    assert store.meta("clock") == written and store.count("alerts") == 0
    runtime.advance("2026-03-27 12:00")  # the statutory warning is stored with its clock
    assert store.meta("clock") == "2026-03-27T12:00:00+08:00" and store.count("alerts") == 1


def test_the_scheduler_waits_for_a_busy_monitor_off_the_event_loop(tmp_path):
    """A batch holds the monitor's lock while it is judged; the scheduler asking for the next
    deadline meanwhile must not stall the event loop (and with it every HTTP request)."""
    import asyncio
    import threading
    import time

    from permitwatch.api import compose
    from permitwatch.streams.clocks import ManualClock
    from permitwatch.streams.settings import Settings
    from tests.embedded import write_catalog
    from tests.factory import moment

    embedded = compose.embedded(Settings(data_dir=tmp_path, catalog=write_catalog(tmp_path)),
                              ManualClock(moment("2026-03-02 08:00")))
    monitor, scheduler = embedded.monitor, embedded.scheduler
    monitor.tick = lambda: None  # the tick has finished; a batch takes the lock before the next question
    busy, release = threading.Event(), threading.Event()

    def batch() -> None:
        with monitor.lock:
            busy.set()
            release.wait(5)

    async def main() -> float:
        task = asyncio.create_task(scheduler.run())
        await asyncio.sleep(0.05)
        holder = threading.Thread(target=batch)
        holder.start()
        busy.wait(5)
        scheduler.poke()
        longest, last = 0.0, time.monotonic()
        for _ in range(25):
            await asyncio.sleep(0.02)
            longest, last = max(longest, time.monotonic() - last), time.monotonic()
        release.set()
        holder.join()
        task.cancel()
        return longest

    try:
        assert asyncio.run(main()) < 0.3
    finally:
        release.set()
        embedded.close()


def test_history_posted_to_a_running_monitor_is_accepted_with_a_warning_naming_import(tmp_path, runtimes):
    runtime = runtimes(tmp_path, now="2026-11-30 10:00")
    c = CaseEvents("SZ-OLD")
    answer = runtime.post([c.submitted("2026-03-02 09:00"), c.accepted("2026-03-03 10:00")]).json()
    assert answer["accepted"] == 2 and len(answer["warnings"]) == 1
    assert "more than 7 days older than the monitor's clock" in answer["warnings"][0]
    assert "permitwatch import" in answer["warnings"][0]
    fresh = CaseEvents("SZ-NEW")
    assert runtime.post([fresh.submitted("2026-11-30 09:00")]).json()["warnings"] == []


def test_a_monitor_started_with_no_catalog_says_what_that_means(tmp_path, caplog):
    from permitwatch.api import compose
    from permitwatch.streams.settings import Settings

    with caplog.at_level("WARNING"):
        embedded = compose.embedded(Settings(data_dir=tmp_path))
    embedded.close()
    assert any("no item catalog" in record.getMessage() and "--catalog" in record.getMessage()
               for record in caplog.records)


def test_metrics_expose_every_known_series_at_0_before_any_input(tmp_path, runtimes):
    """A counter Prometheus first sees at 3 hides those 3 from `increase()`, and an absent one
    makes `sum()` empty: the alerts on dead letters, engine errors and silence never fired."""
    exposed = runtimes(tmp_path).client.get("/metrics").text.splitlines()
    for series in ('permitwatch_dead_letters_total{reason="engine_error"}',
                   'permitwatch_dead_letters_total{reason="schema"}',
                   'permitwatch_alerts_total{rule="PW-019",signal="red",status="retracted"}',
                   'permitwatch_events_total{type="application.submitted"}',
                   'permitwatch_department_events_total{department="D-MARKET"}',  # the catalog's
                   'permitwatch_referral_versions_total{status="exempt"}'):
        assert f"{series} 0.0" in exposed
    assert not [line for line in exposed if "_created" in line], "no creation-time twin of every series"


def test_deadline_lag_is_how_late_the_scheduler_fired_not_how_old_the_deadline_was(tmp_path, runtimes):
    """A deadline the engine could not know at its instant (an acceptance reported weeks late; a
    deemed acceptance that dates a 预警 two days back) was not fired late: its lag counts from
    when the engine learnt it. A deadline fired 90 s after its instant was."""

    def lags(runtime) -> tuple[float, float]:
        registry = runtime.embedded.monitor.metrics.registry
        return (registry.get_sample_value("permitwatch_deadline_firing_lag_seconds_count"),
                registry.get_sample_value("permitwatch_deadline_firing_lag_seconds_sum"))

    for scenario in ("late", "deemed", "on-time"):
        (tmp_path / scenario).mkdir()
    runtime = runtimes(tmp_path / "late", now="2026-04-01 10:00")
    late = CaseEvents("SZ-LATE")
    runtime.post([late.submitted("2026-03-02 09:00"), late.accepted("2026-03-02 10:00")])
    rules = {item["alert"]["rule"] for item in runtime.client.get("/alerts", headers=runtime.auth()).json()["items"]}
    assert {"PW-001", "PW-002"} <= rules and lags(runtime) == (3, 0)

    runtime = runtimes(tmp_path / "deemed", now="2026-04-01 10:00")
    catalog = orjson.loads(runtime.client.get("/catalog", headers=runtime.auth()).content)
    catalog["items"].append({"item_code": "ITEM-P", "name": "p", "department": "D-P", "promised_limit": {"value": 6}})
    assert runtime.client.put("/catalog", content=orjson.dumps(catalog), headers=runtime.auth("admin")).is_success
    deemed = CaseEvents("SZ-DEEMED", item="ITEM-P", department="D-P")
    runtime.post([deemed.submitted("2026-04-01 09:30")])
    runtime.advance("2026-04-10 00:00")  # no answer in 5 working days: accepted on receipt, 预警 due 04-08
    warning = runtime.client.get("/alerts?rule=PW-002", headers=runtime.auth()).json()["items"][0]["alert"]
    assert warning["detected_at"] == "2026-04-08T00:00:00+08:00" and lags(runtime) == (2, 0)

    runtime = runtimes(tmp_path / "on-time", now="2026-04-10 10:00")
    on_time = CaseEvents("SZ-ON-TIME")
    runtime.post([on_time.submitted("2026-04-10 09:00"), on_time.accepted("2026-04-10 09:30")])
    runtime.clock.set(runtime.embedded.monitor.next_deadline() + timedelta(seconds=90))
    runtime.embedded.monitor.tick()
    assert lags(runtime) == (1, 90)


def test_the_engine_clock_delay_is_counted_on_the_runtimes_own_clock(tmp_path, runtimes):
    """Not against the wall clock: the demo's and a rehearsal's clocks are months from it."""
    runtime = runtimes(tmp_path)
    runtime.advance("2026-03-02 09:00")
    assert "permitwatch_engine_clock_behind_seconds 0.0" in runtime.client.get("/metrics").text.splitlines()
    runtime.clock.set(moment("2026-03-02 09:10"))  # and no tick: the scheduler is stuck
    assert "permitwatch_engine_clock_behind_seconds 600.0" in runtime.client.get("/metrics").text.splitlines()
