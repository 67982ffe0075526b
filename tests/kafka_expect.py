"""What the Kafka runtime must produce for a log of events: what `permitwatch replay` produces."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from permitwatch.streams.kafka.stages import alert_value, referral_value
from tests.factory import CaseEvents
from tests.harness import run_all
from tests.scenarios import ITEMS, UNTIL


def with_exemption(events: list) -> list:
    """A red card and, later, an exemption for it (the referral stage), plus one for a case
    that has no referral (a dead letter)."""
    late = CaseEvents("SZ-LATE", item="ITEM-STD")
    nobody = CaseEvents("SZ-NONE", item="ITEM-STD")
    return sorted([*events, late.submitted("2026-03-02 09:00"), late.accepted("2026-03-02 10:00"),
                   late.decided("2026-05-20"), late.exemption("2026-06-01"), nobody.exemption("2026-06-02")],
                  key=lambda e: e.time)


@dataclass
class Expected:
    alerts: set[bytes]
    last_alert: dict[str, bytes]
    referrals: set[bytes]
    latest_referrals: set[bytes]
    referral_ids: dict[bytes, str] = field(default_factory=dict, repr=False)
    """Each expected referral version's referral id, for the message: a wait asks `differences`
    every second, and parsing thousands of missing versions each time starved the workers."""

    @classmethod
    def of(cls, events: list, until: str = UNTIL) -> Expected:
        replayed = run_all(events, until=until, catalog=ITEMS)
        latest = {r.referral_id: referral_value(r) for r in sorted(replayed.referrals, key=lambda r: r.version)}
        ids = {referral_value(r): r.referral_id for r in replayed.referrals}
        return cls({alert_value(a) for a in replayed.alerts}, {a.alert_id: alert_value(a) for a in replayed.alerts},
                   set(ids), set(latest.values()), ids)

    def differences(self, alerts: list[bytes], referrals: list[bytes]) -> list[str]:
        """What differs from replay: the same alert records and the same referral versions, byte
        for byte (repeats allowed, as identical records), and the same last record of each alert."""
        problems = []
        got = set(alerts)
        if got != self.alerts:
            problems.append(f"alert records: {len(self.alerts - got)} missing, {len(got - self.alerts)} unexpected")
        if got == self.alerts and {orjson.loads(v)["alert_id"]: v for v in alerts} != self.last_alert:
            problems.append("the last record of some alert differs")
        got_referrals = set(referrals)
        if got_referrals != self.referrals:
            missing = sorted(self.referral_ids.get(v) or orjson.loads(v)["referral_id"]
                             for v in self.referrals - got_referrals)
            problems.append(f"referral versions: {len(self.referrals - got_referrals)} missing, "
                            f"{len(got_referrals - self.referrals)} unexpected (e.g. of {missing[:3]})")
        return problems

    def assert_met(self, alerts: list[bytes], referrals: list[bytes]) -> None:
        assert self.differences(alerts, referrals) == []
