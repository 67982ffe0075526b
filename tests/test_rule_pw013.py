"""PW-013: quantity-limited items are granted in order of acceptance (state per item)."""

from __future__ import annotations

import copy
from datetime import UTC, timedelta, timezone
from unittest.mock import patch

from hypothesis import example, given, settings
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


_ZONES = [None, UTC, timezone(timedelta(hours=-5))]
_TIMES = [moment("2026-03-02 09:00") + timedelta(hours=h) for h in range(8)]
_INSTANTS = st.tuples(st.integers(0, 7), st.sampled_from(_ZONES)).map(
    lambda pick: _TIMES[pick[0]] if pick[1] is None else _TIMES[pick[0]].astimezone(pick[1]))
"""The same instants in legal time or in other zones, which compare as the instants they are."""
_STANDINGS = st.one_of(st.none(), st.builds(
    lambda accepted, closed, outcome, decided: ItemCase(
        Fact(accepted, f"acc-{accepted:%H}") if accepted is not None else None, closed, outcome,
        Fact(decided, f"grant-{decided:%H}") if outcome == "grant" else None, "D", Officers(),
        Fact(decided, f"dec-{decided:%H}") if outcome in ("grant", "deny") else None),
    st.one_of(st.none(), _INSTANTS, _INSTANTS, _INSTANTS), st.one_of(st.none(), st.none(), _INSTANTS),
    st.sampled_from([None, "grant", "grant", "grant", "deny", "withdrawn"]), _INSTANTS))
_STEPS = st.lists(st.tuples(st.sampled_from("ABCDEF"), _STANDINGS, st.sampled_from([0, 0, 0, 1, 2]),
                            st.sampled_from([False, False, False, True]), st.integers(0, 9)), max_size=60)
"""Per step: the case, its new standing (None: gone), hours the clock moves, whether the waiting
pairs are judged again, and (0) whether the item's index is made again from its state, as after a
restart."""


class _Clock:
    """A Progress whose knowledge grows with the steps: a pair waits until the clock passes it."""

    def __init__(self):
        self.now = _TIMES[0]

    def settled(self, case_id, at):
        return at < self.now

    def passed(self, at):
        return at < self.now


class _NoIndex:
    """The reference judges every pair and forgets by going through the item: it needs no index."""

    def place(self, case_id, case):
        pass

    unplace = place

    def hold(self, pairs):
        pass


def _every_pair(state, index, case_id):
    return sorted((a, b) for a in state.cases for b in state.cases if a != b and case_id in (a, b))


def _forget_by_scanning(state, index, progress):
    for case_id, at in list(state.left.items()):
        if progress.passed(at) and not any(case_id in pair for pair in state.pending):
            del state.left[case_id]
            del state.cases[case_id]
            for pair in [pair for pair in state.alerts if case_id in pair]:
                del state.alerts[pair]


def _play(steps, reference=False):
    """Every step's records from one item state, with the state after it (its dicts' order too)."""
    state, clock = ItemState("ITEM-Q"), _Clock()
    index = _NoIndex() if reference else ItemIndex(state)
    played = []
    with patch.object(pw013, "_pairs_of", _every_pair if reference else pw013._pairs_of), \
            patch.object(pw013, "_forget", _forget_by_scanning if reference else pw013._forget):
        for n, (case_id, standing, hours, recheck, rebuild) in enumerate(steps):
            clock.now += timedelta(hours=hours)
            if not reference and rebuild == 0:
                index = ItemIndex(state)
            out = apply_item_update(state, index, case_id, standing, (f"cause-{n}", clock.now), clock)
            if recheck:
                out += recheck_pending(state, index, clock)
            played.append((out, copy.deepcopy(state), list(state.cases), list(state.alerts), list(state.left)))
            if not reference:
                fresh = ItemIndex(state)
                assert (index.open, index.closed, index.granted) == (fresh.open, fresh.closed, fresh.granted)
                for held_by, pairs in fresh.held.items():
                    assert pairs <= index.held.get(held_by, set())
    return played


def _waiting(hour):
    return ItemCase(Fact(_TIMES[hour], f"acc-{hour}"), None, None, None, "D", Officers())


def _granted(hour, at):
    return ItemCase(Fact(_TIMES[hour], f"acc-{hour}"), None, "grant", Fact(_TIMES[at], f"grant-{at}"), "D", Officers(),
                    Fact(_TIMES[at], f"dec-{at}"))


@settings(max_examples=500, deadline=None)
@given(steps=_STEPS)
# A grant that overtook A waits for the clock; A leaves meanwhile and is kept while the pair waits.
@example(steps=[("A", _waiting(0), 0, False, 1), ("B", _granted(1, 5), 0, False, 1), ("A", None, 0, False, 1),
                ("C", _waiting(2), 2, False, 1), ("D", _waiting(3), 4, True, 1)])
def test_the_pairs_the_index_picks_judge_as_every_pair_would(steps):
    """Judging only the pairs the item's index finds (`_pairs_of`), and forgetting what it holds of
    a case, gives the records and the state, in the same order, that judging every pair of the
    item's cases and going through them gives, in any order of standings, with instants in any
    zone and the index made again at any step; and the index stays what the state says."""
    assert _play(steps) == _play(steps, reference=True)
