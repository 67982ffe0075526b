"""The Kafka topics of permitwatch, their partition counts, and creating them.

    PREFIX.events          in: CloudEvents keyed by case id; also the workers' control records
    PREFIX.dead-letter     out: what could not become an event, with its bytes, reason and source
    PREFIX.alerts          out: alert records keyed by case id
    PREFIX.referrals       out: referral versions keyed by referral id
    PREFIX.catalog         reference: catalog entries keyed by item code (compacted)
    PREFIX.calendar        reference: calendar overrides keyed by version (compacted)
    PREFIX.actions         operators' actions (acknowledge, assign, dismiss, exempt), written
                           by the API instances and read back by all of them (one partition:
                           the audit trail has one order; kept without a time limit)
    PREFIX.city            internal: what the case stage tells the city stage (cases' standings on
                           PW-013 items, red alerts, case reports, exemptions) and the events
                           partitions' clocks; one partition: PW-013 and art. 12(1) compare
                           cases across the whole city, in event time

The events topic and the state co-partitioned with it (the case table's changelog) share one
partition count; it is fixed once the topics exist. Faust creates its own changelog topics.
"""

from __future__ import annotations

from dataclasses import dataclass

TOPIC_ALREADY_EXISTS = 36


class TopologyError(RuntimeError):
    """The topics on the broker do not match the configuration (e.g. a partition count)."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False
    kept: bool = False
    """Never deleted for age (an audit trail), whatever the broker's default retention."""

    def configs(self) -> dict[str, str]:
        configs = {"cleanup.policy": "compact" if self.compacted else "delete"}
        if self.kept:
            configs["retention.ms"] = "-1"
        return configs


@dataclass(frozen=True, slots=True)
class Topology:
    prefix: str
    partitions: int
    replication: int = 1

    def _name(self, suffix: str) -> str:
        return f"{self.prefix}.{suffix}"

    @property
    def events(self) -> str:
        return self._name("events")

    @property
    def dead_letter(self) -> str:
        return self._name("dead-letter")

    @property
    def alerts(self) -> str:
        return self._name("alerts")

    @property
    def referrals(self) -> str:
        return self._name("referrals")

    @property
    def catalog(self) -> str:
        return self._name("catalog")

    @property
    def calendar(self) -> str:
        return self._name("calendar")

    @property
    def actions(self) -> str:
        return self._name("actions")

    @property
    def city(self) -> str:
        return self._name("city")

    def specs(self) -> list[TopicSpec]:
        n = self.partitions
        return [
            TopicSpec(self.events, n),
            TopicSpec(self.dead_letter, n),
            TopicSpec(self.alerts, n),
            TopicSpec(self.referrals, n),
            TopicSpec(self.catalog, 1, compacted=True),
            TopicSpec(self.calendar, 1, compacted=True),
            TopicSpec(self.actions, 1, kept=True),
            TopicSpec(self.city, 1),
        ]


async def ensure_topics(bootstrap: str, topology: Topology) -> list[str]:
    """Create the topics that are missing; fail when an existing one has another partition count
    (a topic created by a producer with the broker's default would break co-partitioning).
    Returns the names created."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="permitwatch-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        specs = topology.specs()
        missing = [spec for spec in specs if spec.name not in existing]
        if missing:
            response = await admin.create_topics([
                NewTopic(spec.name, spec.partitions, topology.replication, topic_configs=spec.configs())
                for spec in missing
            ])
            for name, code, *rest in response.topic_errors:
                if code not in (0, TOPIC_ALREADY_EXISTS):
                    raise TopologyError(f"topic {name} could not be created: error {code} {rest[0] if rest else ''}")
        described = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics([s.name for s in specs])}
        wrong = [f"{spec.name} has {described.get(spec.name)} partitions, expected {spec.partitions}"
                 for spec in specs if described.get(spec.name) != spec.partitions]
        if wrong:
            raise TopologyError("; ".join(wrong) + " (a topic's partition count is fixed once it exists: use "
                                "--partitions to match it, or another --topic-prefix)")
        return [spec.name for spec in missing]
    finally:
        await admin.close()
