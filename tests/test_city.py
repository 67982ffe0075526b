"""The city stage (PW-013 items and referrals) in event time: its output is a function of its
inputs' times, not of the order in which case books on different partitions delivered them; and
SZ-XK art. 12(1) re-versions a referral only when its own finding changes."""

from __future__ import annotations

import itertools
import zlib
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from permitwatch.alerts.city import CityBook, Emitted, ExemptionInput, Watermark, promised
from permitwatch.alerts.clock import JUST_AFTER
from permitwatch.alerts.engine import CaseBook, CaseJudge, exemption_of
from permitwatch.models.common import record_bytes
from permitwatch.models.events import content_digest
from permitwatch.models.settings import RuleSettings
from tests.factory import CaseEvents, moment
from tests.harness import BUILTIN_CALENDAR, run_all
from tests.kafka_expect import with_exemption
from tests.scenarios import ITEMS, UNTIL, crowded_item, late_case, scenario

PARTITIONS = 3


def delivered_by_partition(events: list) -> list[list]:
    """What each of PARTITIONS case books sends the city stage, in its order: (input, promise),
    and (None, clock) for a tick; as the Kafka case stage does, ticking past UNTIL at the end."""
    # One judge per book, on the built-in calendar built once (0.1 s each time: most of this
    # module's time when every example built three).
    books = [CaseBook(CaseJudge(ITEMS.by_code(), BUILTIN_CALENDAR, RuleSettings())) for _ in range(PARTITIONS)]
    sent: list[list] = [[] for _ in range(PARTITIONS)]

    def step(partition: int, outcomes, trailing=None) -> None:
        inputs = [given for outcome in outcomes for given in outcome.city_inputs()]
        sent[partition] += promised([*inputs, *([trailing] if trailing else [])], books[partition].now)

    for event in events:
        partition = zlib.crc32(event.subject.encode()) % PARTITIONS
        if event.kind == "exemption.recorded":
            step(partition, books[partition].advance(event.time),
                 ExemptionInput(event.subject, exemption_of(event), event.time, event.id))
        else:
            step(partition, books[partition].process(event, content_digest(event.model_dump_json())))
    for tick in (moment(UNTIL), moment(UNTIL) + JUST_AFTER):
        for partition, book in enumerate(books):
            step(partition, book.advance(tick))
            sent[partition].append((None, book.now))
    return sent


def through_city(sent: list[list], order: list[int]) -> Emitted:
    """Feed a city book the partitions' deliveries interleaved as `order` says (each partition's
    own order kept), moving its watermark as a Kafka city stage does."""
    city = CityBook(RuleSettings())
    watermark = Watermark(PARTITIONS)
    out = Emitted()
    positions = [0] * PARTITIONS
    pick = iter(order)
    while any(positions[p] < len(sent[p]) for p in range(PARTITIONS)):
        ready = [p for p in range(PARTITIONS) if positions[p] < len(sent[p])]
        partition = ready[next(pick, 0) % len(ready)]
        given, promise = sent[partition][positions[partition]]
        positions[partition] += 1
        watermark.hear(partition, promise)
        if given is not None:
            out.extend(city.take(given))
        if watermark.value is not None:
            out.extend(city.advance(watermark.value))
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), order=st.lists(st.integers(0, 5), max_size=400))
def test_any_interleaving_of_the_partitions_gives_replays_referral_versions_byte_for_byte(seed, order):
    events = with_exemption(scenario(seed, cases=12))
    replayed = run_all(events, until=UNTIL, catalog=ITEMS)
    city = through_city(delivered_by_partition(events), order)
    assert [record_bytes(r) for r in city.referrals] == [record_bytes(r) for r in replayed.referrals]
    pw013 = sorted(record_bytes(a) for a in replayed.alerts if a.rule == "PW-013")
    assert sorted(record_bytes(a) for a in city.alerts) == pw013


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(order=st.lists(st.integers(0, 5), max_size=400))
def test_a_crowded_items_versions_are_replays_in_any_interleaving(order):
    """One version for the red alerts a grant makes at once holds on every runtime: the pairs of a
    grant are judged together once the clock has passed it, however the partitions are read."""
    events = crowded_item(24)
    replayed = run_all(events, until=UNTIL, catalog=ITEMS)
    city = through_city(delivered_by_partition(events), order)
    assert [record_bytes(r) for r in city.referrals] == [record_bytes(r) for r in replayed.referrals]


def test_a_grant_that_overtook_many_waiting_applications_is_one_version_of_its_referral():
    history = by_case(run_all(crowded_item(30), until=UNTIL, catalog=ITEMS).referrals)["SZ-LATER"]
    first = next(v for v in history if any(a.rule == "PW-013" for a in v.alerts))
    assert sum(a.rule == "PW-013" for a in first.alerts) == 30
    assert first.change.en == "30 red alerts PW-013 added" and first.change.zh == "新增红牌 PW-013 30 条"
    # Each of the ten denied later withdraws its finding: a version each, at its own instant.
    withdrawn = [v for v in history if "PW-013 retracted" in v.change.en]
    assert len(withdrawn) == 10
    assert sum(a.status == "withdrawn" for a in history[-1].alerts) == 10


def test_versions_never_go_back_in_time_and_number_from_one():
    events = with_exemption(scenario(42, cases=30))
    history: dict[str, list] = {}
    for referral in run_all(events, until=UNTIL, catalog=ITEMS).referrals:
        history.setdefault(referral.referral_id, []).append(referral)
    assert history
    for versions in history.values():
        assert [v.version for v in versions] == list(range(1, len(versions) + 1))
        assert all(a.as_of <= b.as_of for a, b in itertools.pairwise(versions))


def department_cases(count: int, department: str = "D-ONE", gap_days: int = 10):
    """`count` cases of one department, each with its own officers, each decided late (sort
    their events by time before replaying them)."""
    cases = []
    for n in range(count):
        start = (moment("2026-01-05") + timedelta(days=n * gap_days)).date().isoformat()
        person = f"p{n}"
        cases.append(late_case(f"C-{n}", officer=f"h-{person}", reviewer=f"r-{person}", approver=f"a-{person}",
                               start=start, department=department))
    return cases


def by_case(referrals) -> dict[str, list]:
    out: dict[str, list] = {}
    for referral in referrals:
        out.setdefault(referral.case_id, []).append(referral)
    return out


def test_a_department_referral_cites_the_most_recent_earlier_one_and_later_ones_do_not_touch_it():
    cases = department_cases(6)
    out = run_all(sorted((e for _, events in cases for e in events), key=lambda e: e.time), until="2026-12-31")
    history = by_case(out.referrals)
    final = {case: versions[-1] for case, versions in history.items()}
    assert final["C-0"].aggravating == []
    for n in range(1, 6):
        [finding] = final[f"C-{n}"].aggravating
        assert (finding.subject_kind, finding.subject) == ("department", "D-ONE")
        assert finding.earlier_referrals == [final[f"C-{n - 1}"].referral_id]
    # Each referral: opened with its overdue decision, then the decision names the approver and
    # mitigates; the licence's late issue adds PW-010 and its mitigation. Later referrals of the
    # same department leave it alone.
    assert {case: len(versions) for case, versions in history.items()} == {f"C-{n}": 4 for n in range(6)}


def test_a_withdrawn_citation_is_replaced_and_only_its_citers_get_a_version():
    cases = department_cases(4)
    second, _ = cases[1]
    events = sorted((e for _, events in cases for e in events), key=lambda e: e.time)
    exemption = second.exemption("2026-09-01")
    out = run_all([*events, exemption], until="2026-12-31")
    after = [r for r in out.referrals if r.as_of >= exemption.time]
    assert [(r.case_id, r.status) for r in after] == [("C-1", "exempt"), ("C-2", "open")]
    c2 = after[1]
    assert [f.earlier_referrals for f in c2.aggravating] == [[by_case(out.referrals)["C-0"][-1].referral_id]]
    assert "established by" in c2.change.en and "C-3" not in {r.case_id for r in after}


def test_officer_evidence_is_the_first_event_naming_them_and_a_correction_is_a_version():
    c = CaseEvents("SZ-O")
    events = [c.submitted("2026-03-02 09:00", officer="o-1"), c.accepted("2026-03-02 10:00", officer="o-1"),
              c.step("2026-04-10 10:00", "handle", "o-1"), c.step("2026-04-11 10:00", "handle", "o-2")]
    history = run_all(events, until="2026-04-12").referrals
    handlers = [(v.officers[0].officer, v.officers[0].evidence) for v in history]
    assert handlers == [("o-1", ["SZ-O-1"]), ("o-2", ["SZ-O-4"])]
    assert history[-1].change.en.startswith("handler corrected to o-2")


def test_an_exemption_of_a_case_without_referral_is_refused_when_applied():
    c = CaseEvents("SZ-NONE")
    engine_out = run_all([c.submitted("2026-03-02 09:00"), c.exemption("2026-03-03")])
    assert [r.category for r in engine_out.refused] == ["no_referral"] and engine_out.referrals == []


def test_a_late_event_does_not_jump_ahead_of_what_its_case_has_queued():
    """A case's later input is a newer picture of it even when a late event dates it earlier: the
    city stage applies one case's inputs in the order they came. (The grant's picture, without the
    acceptance, was queued; the acceptance arrived late and was applied at once; then the older
    picture overwrote it and hid that the grant overtook an application accepted earlier.)"""
    a, b = CaseEvents("SZ-A", item="ITEM-Q"), CaseEvents("SZ-B", item="ITEM-Q")
    accepted, granted = a.accepted("2026-03-03 10:00"), a.decided("2026-03-10")
    in_order = [b.submitted("2026-03-02 09:00"), b.accepted("2026-03-02 10:00"), a.submitted("2026-03-02 11:00"),
                accepted, granted, b.decided("2026-03-20")]
    arrived = [*in_order[:3], granted, accepted, in_order[-1]]
    expected = [a for a in run_all(in_order, until=UNTIL, catalog=ITEMS).alerts if a.rule == "PW-013"]
    assert [a.status for a in expected] == ["active"]
    assert [a for a in run_all(arrived, until=UNTIL, catalog=ITEMS).alerts if a.rule == "PW-013"] == expected
