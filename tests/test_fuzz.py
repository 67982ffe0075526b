"""Fuzzing: any sequence of valid events, and any bytes at all, on every input path.

Valid sequences must never crash the engine, must replay to the same bytes, and must keep alert ids
one per fact. Hostile bytes must each become an event or a dead letter with a reason: nothing
raised, nothing lost, no 500. The number of inputs tried is printed at the end of the session
(`pytest --long` tries many more: the hypothesis profile `long`)."""

from __future__ import annotations

import io
import itertools
from collections import defaultdict
from datetime import timedelta

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from permitwatch.alerts.emit import alert_id
from permitwatch.models.common import json_line
from permitwatch.models.deadletter import DeadLetter
from permitwatch.models.events import InvalidEvent, parse_event, parse_event_with_digest
from permitwatch.streams.inputs.readers import Record
from permitwatch.streams.kafka.topology import Topology
from permitwatch.streams.port import RawInput
from permitwatch.streams.replay import replay
from tests.embedded import start
from tests.factory import CaseEvents, moment
from tests.fuzzing import TRIED, raw_inputs, valid_events
from tests.harness import engine_for, run_all
from tests.memory_kafka import MemoryCluster
from tests.scenarios import ITEMS, PATIENT, UNTIL

START = moment("2026-03-02 00:00")
OFFICERS = ["o-1", "o-2", "o-3"]
MATERIALS = ["M1", "M2", "M3", "M4", "M5", "M9"]
CATEGORIES = {"invalid_json", "invalid_utf8", "not_an_object", "missing_type", "unknown_type", "schema"}
SHARED = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                        HealthCheck.data_too_large, HealthCheck.large_base_example])


@pytest.fixture(scope="module")
def fuzzed_runtime(tmp_path_factory):
    """One monitor for every example, as in production: what earlier inputs left stays."""
    runtime = start(tmp_path_factory.mktemp("fuzz"))
    yield runtime
    runtime.stop()


def _one_event(draw, case: CaseEvents, when: str):
    kind = draw(st.sampled_from(["submitted", "accepted", "rejected", "correction", "supplied", "procedure",
                                 "procedure_ended", "step", "forwarded", "hearing", "decided", "licence",
                                 "published", "fee", "withdrawn", "exemption"]))
    materials = tuple(draw(st.lists(st.sampled_from(MATERIALS), min_size=1, max_size=4)))
    officer = draw(st.sampled_from(OFFICERS))
    procedure = draw(st.sampled_from(["extension", "hearing", "inspection", "on_site_verification", "other"]))
    if kind == "submitted":
        return case.submitted(when, materials=materials, officer=officer)
    if kind == "accepted":
        return case.accepted(when, receipt_no=draw(st.sampled_from(["R-1", None])), officer=officer)
    if kind in ("rejected", "withdrawn", "licence", "published", "forwarded"):
        return getattr(case, kind)(when)
    if kind == "correction":
        return case.correction(when, materials, officer=officer)
    if kind == "supplied":
        return case.supplied(when, materials)
    if kind == "procedure":
        return case.procedure(when, procedure, draw(st.sampled_from([None, 0, 5, 12, 45])),
                              approved_by=draw(st.sampled_from(["head-1", None])), notified=draw(st.booleans()))
    if kind == "procedure_ended":
        return case.procedure_ended(when, procedure)
    if kind == "step":
        return case.step(when, draw(st.sampled_from(["handle", "review", "approve"])), officer,
                         draw(st.sampled_from(["pass", "return"])))
    if kind == "hearing":
        which = draw(st.sampled_from(["requested", "notified", "held"]))
        extra = {"scheduled_for": (moment(when) + timedelta(days=draw(st.integers(-3, 20)))).isoformat()} \
            if which == "notified" else {}
        return case.hearing(which, when, **extra)
    if kind == "decided":
        return case.decided(when, draw(st.sampled_from(["grant", "deny"])), officer=officer)
    if kind == "fee":
        return case.fee(when, draw(st.sampled_from(["0.00", "20.00", "80.00"])),
                        fee_code=draw(st.sampled_from(["FEE-1", "FEE-X"])))
    return case.exemption(when)


@st.composite
def event_sequences(draw) -> list:
    """Events of up to three cases, any type in any order, repeats included: most are nonsense
    sequences a real window would never send, which is the point."""
    cases = [CaseEvents(f"SZ-H-{n}", item=draw(st.sampled_from(["ITEM-STD", "ITEM-Q", "ITEM-UNLISTED"])))
             for n in range(draw(st.integers(1, 3)))]
    events: list = []
    for _ in range(draw(st.integers(1, 30))):
        if events and draw(st.integers(0, 9)) == 0:
            events.append(draw(st.sampled_from(events)))
            continue
        when = START + timedelta(days=draw(st.integers(0, 150)), minutes=draw(st.integers(0, 24 * 60 - 1)))
        events.append(_one_event(draw, draw(st.sampled_from(cases)), when.isoformat()))
    if draw(st.booleans()):
        events.sort(key=lambda e: e.time)
    return events


def _records(events: list) -> list[bytes]:
    out = run_all(events, until=UNTIL, catalog=ITEMS, settings=PATIENT)
    return [json_line(a) for a in out.alerts] + [json_line(r) for r in out.referrals]


@SHARED
@given(events=event_sequences())
def test_valid_sequences_never_crash_the_engine_and_replay_to_the_same_bytes(events):
    TRIED["valid event sequences"] += 1
    assert _records(events) == _records(events)


@SHARED
@given(events=event_sequences())
def test_alert_ids_are_one_per_fact_and_alternate_active_and_retracted(events):
    TRIED["valid event sequences"] += 1
    out = run_all(events, until=UNTIL, catalog=ITEMS, settings=PATIENT).alerts
    statuses: dict[str, list[str]] = defaultdict(list)
    fact_of: dict[str, tuple] = {}
    for alert in out:
        assert alert.alert_id == alert_id(alert.case_id, alert.rule, alert.fact)
        assert fact_of.setdefault(alert.alert_id, (alert.case_id, alert.rule, alert.fact)) == \
            (alert.case_id, alert.rule, alert.fact)
        statuses[alert.alert_id].append(alert.status)
    for history in statuses.values():
        assert history[0] == "active"
        assert all(a != b for a, b in itertools.pairwise(history)), history


@SHARED
@given(raw=raw_inputs)
def test_any_bytes_parse_to_an_event_or_a_reason(raw):
    TRIED["parse_event_with_digest"] += 1
    try:
        parse_event_with_digest(raw)
    except InvalidEvent as invalid:
        assert invalid.category in CATEGORIES and invalid.reason


@SHARED
@given(batch=st.lists(raw_inputs | valid_events, min_size=1, max_size=12))
def test_embedded_ingest_accounts_for_every_input(fuzzed_runtime, batch):
    """Through the embedded monitor and its SQLite journal: each input is journalled, a
    duplicate, or a dead letter holding the original bytes; the monitor keeps working."""
    TRIED["embedded ingest"] += len(batch)
    runtime = fuzzed_runtime
    store = runtime.embedded.monitor.store
    letters_before = store.count("dead_letters")
    result = runtime.embedded.monitor.ingest([RawInput(f"fuzz:{n}", raw) for n, raw in enumerate(batch)])
    assert result.accepted + result.duplicates + len(result.rejected) == len(batch)
    assert store.count("dead_letters") == letters_before + len(result.rejected)
    kept = [bytes(row[0]) for row in store.reader.execute(
        "SELECT raw FROM dead_letters ORDER BY rowid DESC LIMIT ?", (len(result.rejected),))]
    assert sorted(kept) == sorted(batch[r.index] for r in result.rejected)
    assert all(r.reason for r in result.rejected)
    runtime.embedded.monitor.tick()


@SHARED
@given(body=raw_inputs | st.lists(raw_inputs, max_size=5).map(b"\n".join),
       content_type=st.sampled_from(["application/cloudevents+json", "application/cloudevents-batch+json",
                                     "application/x-ndjson", "application/json", "text/plain", "",
                                     "application/json; charset=latin-1"]))
def test_http_ingest_answers_every_body_with_a_reason_never_a_500(fuzzed_runtime, body, content_type):
    TRIED["HTTP POST /events"] += 1
    runtime = fuzzed_runtime
    response = runtime.client.post("/events", content=body,
                                   headers={**runtime.auth("ingest"), "Content-Type": content_type})
    assert response.status_code in (202, 400, 413, 415, 422), response.text
    answer = response.json()
    assert answer.get("detail") or "accepted" in answer
    assert "Traceback" not in response.text


@SHARED
@given(values=st.lists(st.tuples(st.binary(max_size=20), raw_inputs | valid_events), min_size=1, max_size=10))
def test_kafka_worker_turns_every_record_into_state_or_a_dead_letter(values):
    TRIED["Kafka worker stage"] += len(values)
    topology = Topology("fz", partitions=2)
    cluster = MemoryCluster(topology, ITEMS, now=moment(UNTIL))
    for key, value in values:
        cluster.send_raw(key, value)
    cluster.run()
    invalid = 0
    for _, value in values:
        try:
            parse_event_with_digest(value)
        except InvalidEvent:
            invalid += 1
    letters = [DeadLetter.model_validate_json(r.value) for r in cluster.records(topology.dead_letter)]
    assert len(letters) >= invalid
    assert all(letter.reason for letter in letters)
    copied = [letter for letter in letters if letter.raw is not None or letter.raw_base64 is not None]
    assert {letter.original() for letter in copied} <= {value for _, value in values}
    # A letter that would pass the record limit says where its original is instead of copying it.
    assert all(letter.source is not None and "not copied here" in letter.reason
               for letter in letters if letter not in copied)


@SHARED
@given(lines=st.lists(raw_inputs | valid_events, min_size=1, max_size=12))
def test_replay_counts_every_line_as_an_event_or_a_dead_letter(lines):
    lines = [line for line in lines if b"\n" not in line and line.strip()]
    TRIED["permitwatch replay"] += len(lines)
    alerts, letters = io.BytesIO(), io.BytesIO()
    summary = replay((Record(f"fuzz:{n}", raw) for n, raw in enumerate(lines)), engine_for(ITEMS), alerts, letters,
                     until=moment(UNTIL))
    assert summary.records == len(lines)
    written = letters.getvalue().splitlines()
    assert len(written) == sum(summary.invalid.values())
    assert all(orjson.loads(line)["reason"] for line in written)


@pytest.mark.parametrize("raw", [b"[" * 100_000 + b"]" * 100_000, b'{"data":' * 5000 + b"1" + b"}" * 5000])
def test_deep_nesting_is_refused_without_exhausting_the_stack(raw):
    with pytest.raises(InvalidEvent) as refused:
        parse_event(raw)
    assert refused.value.category in CATEGORIES


def test_a_batch_element_nested_too_deeply_refuses_the_batch_and_keeps_its_bytes(runtimes, tmp_path):
    """Found by the fuzzer: a batch element is re-serialised to be journalled on its own, and
    orjson writes no more than 254 levels; the request got a 500."""
    runtime = runtimes(tmp_path)
    body = b'[{"id": ' + b"[" * 600 + b"]" * 600 + b"}]"
    response = runtime.client.post("/events", content=body, headers={
        **runtime.auth("ingest"), "Content-Type": "application/cloudevents-batch+json"})
    assert response.status_code == 400
    assert "element 0 of the batch nests too deeply" in response.json()["detail"]
    raw = runtime.embedded.monitor.store.reader.execute("SELECT raw FROM dead_letters").fetchall()
    assert [bytes(r[0]) for r in raw] == [body]
