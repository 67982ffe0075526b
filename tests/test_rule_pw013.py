"""PW-013: quantity-limited items are granted in order of acceptance (state per item)."""

from __future__ import annotations

from tests.factory import CaseEvents, catalog
from tests.harness import active, engine_for, rules, run

ITEMS = catalog(
    {"item_code": "ITEM-Q", "name": "出租车经营权", "department": "D-TRANSPORT", "quantity_limited": True},
    {"item_code": "ITEM-T", "name": "海域使用权", "department": "D-OCEAN", "quantity_limited": True,
     "allocation": "auction"},
)


def two_cases(item="ITEM-Q"):
    a, b = CaseEvents("SZ-A", item=item), CaseEvents("SZ-B", item=item)
    start = [a.submitted("2026-03-02 09:00"), a.accepted("2026-03-02 10:00"),
             b.submitted("2026-03-02 11:00"), b.accepted("2026-03-03 10:00")]
    return a, b, start


def test_grant_overtaking_an_earlier_waiting_application():
    _, b, start = two_cases()
    alerts = run([*start, b.decided("2026-03-05")], catalog=ITEMS, until="2026-03-10")
    [alert] = active(alerts, "PW-013")
    assert alert.case_id == "SZ-B" and alert.department == "D-MARKET"
    assert "SZ-A, accepted earlier, was still waiting" in alert.message.en
    assert alert.evidence == ["SZ-B-2", "SZ-B-3", "SZ-A-2"]


def test_grants_in_acceptance_order():
    a, b, start = two_cases()
    assert "PW-013" not in rules(run([*start, a.decided("2026-03-04"), b.decided("2026-03-05")], catalog=ITEMS, until="2026-03-10"))


def test_overtaken_application_later_denied_did_not_qualify():
    a, b, start = two_cases()
    alerts = run([*start, b.decided("2026-03-05"), a.decided("2026-03-06", "deny")], catalog=ITEMS, until="2026-03-10")
    records = [x for x in alerts if x.rule == "PW-013"]
    assert [r.status for r in records] == ["active", "retracted"]
    assert records[1].retraction.evidence == ["SZ-A-3"]  # the denial


def test_late_arrival_of_the_earlier_grant_retracts():
    a, b, start = two_cases()
    later = CaseEvents("SZ-C").submitted("2026-03-06")  # the clock passes the grant
    alerts = run([*start, b.decided("2026-03-05"), later, a.decided("2026-03-04")], catalog=ITEMS, until="2026-03-10")
    assert [x.status for x in alerts if x.rule == "PW-013"] == ["active", "retracted"]


def test_judged_once_the_grants_instant_has_passed():
    """An earlier application closed at the very instant of the grant did not wait for it; which
    of the two inputs arrives first must not matter, so the pair is judged only when the clock
    has moved past that instant."""
    a, b, start = two_cases()
    grant, withdrawal = b.decided("2026-03-05 10:00"), a.withdrawn("2026-03-05 10:00")
    engine = engine_for(ITEMS)
    at_the_instant = [alert for event in [*start, grant] for alert in engine.process(event).alerts]
    assert "PW-013" not in rules(at_the_instant)
    assert "PW-013" in rules(engine.finish().alerts)  # once it is past, nothing else came: a finding
    for order in ([grant, withdrawal], [withdrawal, grant]):
        alerts = run([*start, *order], catalog=ITEMS, until="2026-03-06")
        assert [x for x in alerts if x.rule == "PW-013"] == []


def test_items_allocated_by_auction_are_not_ordered():
    _, b, start = two_cases("ITEM-T")
    assert "PW-013" not in rules(run([*start, b.decided("2026-03-05")], catalog=ITEMS, until="2026-03-10"))


def test_one_finding_per_overtaken_application_whatever_the_arrival_order():
    """Cases of one item sit on different Kafka partitions: their standings reach the item in any
    order, and the alerts must not depend on it."""
    a, b, _ = two_cases()
    c = CaseEvents("SZ-C", item="ITEM-Q")
    events = [a.submitted("2026-03-02 09:00"), a.accepted("2026-03-02 10:00"),
              b.submitted("2026-03-02 11:00"), b.accepted("2026-03-02 12:00"),
              c.submitted("2026-03-02 13:00"), c.accepted("2026-03-03 10:00"), c.decided("2026-03-05")]
    forward = active(run(events, catalog=ITEMS, until="2026-03-10"), "PW-013")
    backward = active(run([*events[4:], *events[2:4], *events[:2]], catalog=ITEMS, until="2026-03-10"), "PW-013")
    assert sorted(x.fact for x in forward) == sorted(x.fact for x in backward)
    assert sorted(x.model_dump_json() for x in forward) == sorted(x.model_dump_json() for x in backward)
    assert len(forward) == 2 and {x.evidence[-1].rsplit("-", 1)[0] for x in forward} == {"SZ-A", "SZ-B"}
