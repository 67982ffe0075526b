"""Engine-wide behaviour: duplicates, arrival order, timers, forgetting closed cases."""

from __future__ import annotations

import random
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from permitwatch.models.common import json_line
from permitwatch.models.settings import RuleSettings
from tests.factory import CaseEvents, catalog, moment
from tests.harness import active, engine_for, rules, run

ITEMS = catalog(
    {"item_code": "ITEM-Q", "name": "q", "department": "D", "quantity_limited": True, "promised_limit": {"value": 8},
     "hearing_required": True, "fee": {"fee_code": "FEE-1", "max_amount": "50.00"}},
)


def scenario(seed: int, cases: int = 4) -> list:
    """A few cases with a realistic spread of compliant and violating events."""
    rnd = random.Random(seed)
    events = []
    for n in range(cases):
        c = CaseEvents(f"SZ-{seed}-{n}", item=rnd.choice(["ITEM-STD", "ITEM-Q"]))
        day = moment("2026-03-02 09:00") + timedelta(days=rnd.randint(0, 20), hours=rnd.randint(0, 8))

        def at(offset_days: float, day=day) -> str:
            return (day + timedelta(days=offset_days)).isoformat()

        events.append(c.submitted(at(0), materials=("M1", "M2")))
        if rnd.random() < 0.5:
            events.append(c.correction(at(rnd.choice([1, 9])), ("M2", "M3")))
            events.append(c.supplied(at(10), ("M2", "M3")))
            if rnd.random() < 0.5:
                events.append(c.correction(at(11), rnd.choice([("M3",), ("M4",), ("M9",)])))
        events.append(c.accepted(at(12), receipt_no=rnd.choice(["R-1", None])))
        if rnd.random() < 0.4:
            events.append(c.procedure(at(14), rnd.choice(["extension", "hearing", "on_site_verification"]),
                                      rnd.choice([5, 12]), approved_by=rnd.choice(["head", None])))
            events.append(c.procedure_ended(at(18), "hearing"))
        if rnd.random() < 0.3:
            events.append(c.hearing("held", at(20)))
        if rnd.random() < 0.8:
            events.append(c.decided(at(rnd.choice([15, 30, 45])), rnd.choice(["grant", "deny"])))
            if rnd.random() < 0.7:
                events.append(c.licence(at(rnd.choice([46, 70]))))
                events.append(c.published(at(47)))
            if rnd.random() < 0.3:
                events.append(c.fee(at(46), rnd.choice(["20.00", "80.00"])))
        elif rnd.random() < 0.3:
            events.append(c.withdrawn(at(16)))
    events.sort(key=lambda e: e.time)
    return events


UNTIL = "2026-09-01"


# Shuffled events arrive up to months late; keep closed cases long enough to receive them.
PATIENT = RuleSettings(closed_case_retention_days=1000)


def final_ids(events, exclude=("PW-018",)) -> set[str]:
    alerts = run(events, until=UNTIL, catalog=ITEMS, settings=PATIENT)
    return {a.alert_id for a in active(alerts) if a.rule not in exclude}


def test_every_event_duplicated_gives_the_same_alerts():
    events = scenario(7, cases=8)
    once = [json_line(a) for a in run(events, until=UNTIL, catalog=ITEMS)]
    doubled = [e for event in events for e in (event, event)]
    twice = [json_line(a) for a in run(doubled, until=UNTIL, catalog=ITEMS)]
    assert once == twice and once


def test_a_duplicate_arriving_much_later_changes_nothing():
    events = scenario(11, cases=6)
    assert run(events + events[:5], until=UNTIL, catalog=ITEMS) == run(events, until=UNTIL, catalog=ITEMS)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(min_value=0, max_value=10_000), shuffle=st.randoms(use_true_random=False))
def test_arrival_order_does_not_change_what_finally_holds(seed, shuffle):
    """Events are judged in event time: however they arrive, the same alerts hold in the end
    (PW-018 excepted: arriving late is what it looks at)."""
    events = scenario(seed)
    arrived = list(events)
    shuffle.shuffle(arrived)
    assert final_ids(arrived) == final_ids(events)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(min_value=0, max_value=10_000), shuffle=st.randoms(use_true_random=False))
def test_the_selective_path_equals_judging_everything_every_time(seed, shuffle):
    """The engine runs only the rules an in-order event can affect; running every rule on every
    event must give exactly the same records, in the same order."""
    events = scenario(seed, cases=6)
    arrived = list(events)
    if shuffle.random() < 0.5:
        shuffle.shuffle(arrived)
    selective = run(arrived, until=UNTIL, catalog=ITEMS)
    full = run(arrived, until=UNTIL, catalog=ITEMS, always_full=True)
    assert [json_line(a) for a in selective] == [json_line(a) for a in full]


def test_simulated_city_alerts_match_its_ground_truth():
    """The city simulator plans violations independently of the rules; the engine must find
    exactly them, at the instants the plan says."""
    from permitwatch.alerts.clock import WorkingCalendar
    from permitwatch.alerts.engine import Engine
    from permitwatch.models.events import parse_event
    from permitwatch.streams.sample_catalog import SAMPLE_CATALOG
    from permitwatch.streams.simulate import CitySimulator

    sim = CitySimulator(seed=42, violation_rate=0.5, cases_per_day=30)
    engine = Engine(SAMPLE_CATALOG.by_code(), WorkingCalendar(), RuleSettings())
    out = []
    for _, raw in sim.events(cases=1200):
        out += engine.process(parse_event(raw)).alerts
    found = {(a.case_id, a.rule, a.signal, a.detected_at) for a in active(out)}
    expected = {(e.case_id, e.rule, e.signal, e.at) for e in sim.ground_truth if e.at <= engine.now}
    assert found == expected
    assert {rule for _, rule, _, _ in expected} == {f"PW-{n:03d}" for n in range(1, 20)}


def test_timers_fire_in_deadline_order_across_cases():
    a, b = CaseEvents("SZ-A"), CaseEvents("SZ-B")
    alerts = run([b.submitted("2026-03-02"), b.accepted("2026-03-04"), a.submitted("2026-03-02"),
                  a.accepted("2026-03-03")], until="2026-04-10")
    stamps = [x.detected_at for x in alerts]
    assert stamps == sorted(stamps)
    assert [(x.case_id, x.rule) for x in alerts if x.rule == "PW-001"] == [("SZ-A", "PW-001"), ("SZ-B", "PW-001")]


def test_a_retired_case_is_judged_against_its_history_when_an_event_for_it_comes():
    """EVENTS.md, old cases: a late licence months after the case left memory is the licence of
    its grant (before: a new case, "licence without a grant"), a re-delivered submission is a
    duplicate, and its officers are still known."""
    engine = engine_for()
    c = CaseEvents()
    submitted = c.submitted("2026-03-02")
    alerts = run([submitted, c.accepted("2026-03-03"), c.decided("2026-03-10"), c.published("2026-03-12")],
                 engine=engine, until="2026-07-01")
    assert engine.open_cases == 0 and engine.stats.cases_retired == 1 and rules(alerts) == {"PW-010"}
    later = engine.process(c.licence("2026-07-15")).alerts + engine.process(submitted).alerts
    later += engine.advance(moment("2026-08-01")).alerts + engine.finish().alerts
    assert later == [] and engine.stats.cases_restored == 1 and engine.stats.duplicates == 1
    assert engine.cases[c.case_id].officer("approver") == "o-approver"
    engine.advance(moment("2026-10-01"))
    assert engine.open_cases == 0 and engine.stats.cases_retired == 2


def test_closed_cases_are_retired_after_their_last_timer_and_retention():
    engine = engine_for()
    c = CaseEvents()
    run([c.submitted("2026-03-02"), c.accepted("2026-03-03"), c.decided("2026-03-10"), c.licence("2026-03-11"),
         c.published("2026-03-12")], engine=engine)
    assert engine.open_cases == 1
    engine.advance(moment("2026-04-05"))  # the publication and licence timers have passed
    assert engine.open_cases == 1  # kept 30 days so a late event can still retract
    engine.advance(moment("2026-06-01"))
    assert engine.open_cases == 0 and engine.stats.cases_retired == 1 and len(engine.timers) == 0


def test_open_case_with_nothing_pending_is_forgotten_after_idle_retention():
    engine = engine_for()
    c = CaseEvents()
    run([c.submitted("2026-03-02"), c.accepted("2026-03-03")], engine=engine, until="2026-05-01")
    assert engine.open_cases == 1
    engine.advance(moment("2027-06-30"))
    assert engine.open_cases == 0
