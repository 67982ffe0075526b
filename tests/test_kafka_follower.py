"""The API's follower of the Kafka topics: repeats of an output (same source header, as a
restarted worker produces them) are stored once; records that are not permitwatch's are
dead-lettered, not fatal; positions are stored with the records."""

from __future__ import annotations

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from permitwatch.streams.kafka.follower import Follower
from permitwatch.streams.kafka.stages import alert_value
from permitwatch.streams.kafka.topology import Topology
from permitwatch.streams.kafka.wire import SOURCE_HEADER
from permitwatch.streams.metrics import Metrics
from permitwatch.streams.store import Store
from tests.factory import CaseEvents
from tests.harness import active, run
from tests.scenarios import ITEMS

TOPOLOGY = Topology("pw", 2)


def record(topic: str, offset: int, value: bytes, source: str | None) -> ConsumerRecord:
    headers = [(SOURCE_HEADER, source.encode())] if source else []
    return ConsumerRecord(topic, 0, offset, 1_780_000_000_000, 0, b"SZ-1", value, None, 4, len(value), headers)


def test_repeated_outputs_are_stored_once_and_foreign_records_are_dead_lettered(tmp_path):
    case = CaseEvents("SZ-1", item="ITEM-STD")
    [alert] = active(run([case.submitted("2026-03-02 09:00"), case.accepted("2026-03-02 10:00")],
                         until="2026-12-31", catalog=ITEMS), "PW-001")
    store = Store(tmp_path / "read.sqlite")
    follower = Follower("unused:9092", TOPOLOGY, store, Metrics("kafka-api"), lambda: None)
    value = alert_value(alert)
    tp = TopicPartition(TOPOLOGY.alerts, 0)
    follower._store({tp: [record(tp.topic, 0, value, "pw.events/0/7/0"),
                          record(tp.topic, 1, value, "pw.events/0/7/0"),
                          record(tp.topic, 2, b"{\"not\": \"an alert\"}", "pw.events/0/8/0")]})
    assert store.count("alerts") == 1
    [(category, origin)] = store.reader.execute("SELECT category, origin FROM dead_letters").fetchall()
    assert category == "schema" and origin == "pw.alerts/0/2"
    assert store.meta(f"kafka/{tp.topic}/0") == "3"
    store.close()


def test_known_events_are_looked_up_by_the_journals_index_not_by_scanning_it(tmp_path):
    """The read model asks for every event it copies whether it is known: a scan of the whole
    journal each time made it slower with every event it had (40 events/s after a few hundred
    thousand)."""
    import orjson

    from permitwatch.models.events import content_digest

    store = Store(tmp_path / "read.sqlite")
    first, other = CaseEvents("SZ-1", item="ITEM-STD"), CaseEvents("SZ-2", item="ITEM-STD")
    event = first.submitted("2026-03-02 09:00")
    raw = orjson.dumps(event.model_dump(mode="json"))
    with store.transaction() as tx:
        Store.journal_events(tx, [Store.journal_row(event, raw, content_digest(raw), "c", "r")])
    same_id_elsewhere = event.model_copy(update={"source": "/another/window"})
    statements: list[str] = []
    store._writer.set_trace_callback(statements.append)
    with store.transaction() as tx:
        known = Store.known_events(tx, [event, same_id_elsewhere, other.submitted("2026-03-02 09:00")])
    store._writer.set_trace_callback(None)
    assert list(known) == [(event.source, event.id)]
    lookups = [sql for sql in statements if sql.startswith("SELECT")]
    assert lookups
    for sql in lookups:
        plan = " ".join(row[3] for row in store._writer.execute(f"EXPLAIN QUERY PLAN {sql}"))
        assert "SEARCH journal USING INDEX" in plan and "SCAN" not in plan, plan
    store.close()
