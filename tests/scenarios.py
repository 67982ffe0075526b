"""Scenarios shared by the tests of several modules: a small catalog, a seeded generator of
realistic cases, a late case that makes a referral, and the settings and horizon they run with."""

from __future__ import annotations

import random
from datetime import timedelta

from permitwatch.models.settings import RuleSettings
from tests.factory import CaseEvents, catalog, moment
from tests.harness import active, run

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


def late_case(case_id: str = "SZ-A", officer: str = "o-handler", start: str = "2026-03-02",
              department: str = "D-MARKET", reviewer: str = "o-reviewer", approver: str = "o-approver"):
    """Accepted, reviewed, decided after the statutory deadline, licence issued late."""
    c = CaseEvents(case_id, department=department)
    day = moment(start)

    def at(days: int, hour: int = 10) -> str:
        return (day + timedelta(days=days)).replace(hour=hour).isoformat()

    return c, [
        c.submitted(at(0, 9), officer=officer),
        c.accepted(at(1), officer=officer),
        c.step(at(5), "review", reviewer),
        c.decided(at(40), officer=approver),
        c.published(at(41)),
        c.licence(at(70)),
    ]


def crowded_item(waiting: int) -> list:
    """`waiting` applications accepted on the quantity-limited item, then one accepted after them
    and granted while they all wait (PW-013: `waiting` red alerts on the granted case); every
    third waiting one is denied later, which retracts its finding (it did not qualify)."""
    events = []
    start = moment("2026-03-02 09:00")
    for n in range(waiting):
        c = CaseEvents(f"SZ-W{n:03}", item="ITEM-Q")
        day = start + timedelta(minutes=10 * n)
        events += [c.submitted(day.isoformat()), c.accepted((day + timedelta(minutes=5)).isoformat())]
        decided = start + timedelta(days=10, hours=n % 5)
        events.append(c.decided(decided.isoformat(), outcome="deny" if n % 3 == 0 else "grant"))
    late = CaseEvents("SZ-LATER", item="ITEM-Q")
    day = start + timedelta(days=2)
    events += [late.submitted(day.isoformat()), late.accepted((day + timedelta(hours=1)).isoformat()),
               late.decided((day + timedelta(days=1)).isoformat())]
    events.sort(key=lambda e: e.time)
    return events
