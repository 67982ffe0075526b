"""PW-013: quantity-limited items are granted in order of acceptance (state per item)."""

from __future__ import annotations

from datetime import timedelta
from unittest.mock import patch

from hypothesis import given, settings
from hypothesis import strategies as st

from permitwatch.alerts.case import Fact
from permitwatch.alerts.rules import pw013_out_of_order_grant as pw013
from permitwatch.alerts.rules.pw013_out_of_order_grant import (
    ItemCase,
    ItemIndex,
    ItemState,
    apply_item_update,
    recheck_pending,
)
from permitwatch.models.alerts import Officers
from tests.factory import CaseEvents, catalog, moment
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


_TIMES = [moment("2026-03-02 09:00") + timedelta(hours=h) for h in range(8)]
_STANDINGS = st.one_of(st.none(), st.builds(
    lambda accepted, closed, outcome, decided: ItemCase(
        Fact(_TIMES[accepted], f"acc-{accepted}") if accepted is not None else None,
        _TIMES[closed] if closed is not None else None, outcome,
        Fact(_TIMES[decided], f"grant-{decided}") if outcome == "grant" else None, "D", Officers(),
        Fact(_TIMES[decided], f"dec-{decided}") if outcome in ("grant", "deny") else None),
    st.sampled_from([None, *range(8)]), st.sampled_from([None, None, *range(8)]),
    st.sampled_from([None, "grant", "grant", "grant", "deny", "withdrawn"]), st.integers(0, 7)))
_STEPS = st.lists(st.tuples(st.sampled_from("ABCDEF"), _STANDINGS, st.integers(0, 3), st.booleans()), max_size=60)


class _Clock:
    """A Progress whose knowledge grows with the steps: a pair waits until the clock passes it."""

    def __init__(self):
        self.now = _TIMES[0]

    def settled(self, case_id, at):
        return at < self.now

    def passed(self, at):
        return at < self.now


def _play(steps, pairs_of=None):
    """Every step's alerts from one item state, and the state; `pairs_of` replaces the index's
    choice of pairs (the reference: every pair of the item's cases)."""
    state, clock = ItemState("ITEM-Q"), _Clock()
    index = ItemIndex(state)
    out = []
    for n, (case_id, standing, hours, recheck) in enumerate(steps):
        clock.now += timedelta(hours=hours)
        with patch.object(pw013, "_pairs_of", pairs_of or pw013._pairs_of):
            out += apply_item_update(state, index, case_id, standing, (f"cause-{n}", clock.now), clock)
            if recheck:
                out += recheck_pending(state, index, clock)
        fresh = ItemIndex(state)
        assert (index.open, index.closed, index.granted) == (fresh.open, fresh.closed, fresh.granted)
        for case_id, pairs in fresh.held.items():
            assert pairs <= index.held.get(case_id, set())
    return out, state


def _every_pair(state, index, case_id):
    return sorted((a, b) for a in state.cases for b in state.cases if a != b and case_id in (a, b))


@settings(max_examples=500, deadline=None)
@given(steps=_STEPS)
def test_the_pairs_the_index_picks_judge_as_every_pair_would(steps):
    """Judging only the pairs the item's index finds (`_pairs_of`) gives the records and the state
    that judging every pair of the item's cases gives, in any order of standings, and the index
    stays what the state says."""
    indexed, state = _play(steps)
    every, reference = _play(steps, _every_pair)
    assert indexed == every and state == reference
