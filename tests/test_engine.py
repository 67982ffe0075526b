"""Engine-wide behaviour: duplicates, arrival order, timers, forgetting closed cases."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from permitwatch.models.common import json_line
from permitwatch.models.settings import RuleSettings
from tests.factory import CaseEvents, moment
from tests.harness import active, engine_for, rules, run
from tests.scenarios import ITEMS, UNTIL, final_ids, scenario


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
    from permitwatch.streams.simulation.city import CitySimulator
    from permitwatch.streams.simulation.sample_catalog import SAMPLE_CATALOG

    sim = CitySimulator(seed=42, violation_rate=0.5, cases_per_day=30)
    engine = Engine(SAMPLE_CATALOG.by_code(), WorkingCalendar(), RuleSettings())
    out = []
    for _, raw in sim.events(cases=1200):
        out += engine.process(parse_event(raw)).alerts
    found = {(a.case_id, a.rule, a.signal, a.detected_at) for a in active(out)}
    expected = {(e.case_id, e.rule, e.signal, e.at) for e in sim.ground_truth if e.known <= engine.now}
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
