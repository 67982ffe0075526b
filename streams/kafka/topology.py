"""The Kafka topics of permitwatch: names, partition counts, keys, retention, and creating them.

`Topology.specs` is the one description of the topics: `ensure_topics` creates them from it,
docs/kafka.md's table and the AsyncAPI document (docs/asyncapi.yaml, checked by a test) follow it.

The events topic and the state co-partitioned with it (the case table's changelog) share one
partition count; it is fixed once the topics exist. Faust creates its own changelog topics.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from permitwatch.models.errors import Misconfigured

TOPIC_ALREADY_EXISTS = 36
DAY_MS = 86_400_000
MAX_RECORD_BYTES = 8 << 20
"""Kafka's default (1 MB) is about 2,000 red alerts of one case in a referral version: a grant that
overtook 2,000 waiting applications (PW-013) would stop the city stage."""

CITY_TABLE = "city"
"""The city stage's faust table: its changelog is `{group}-city-changelog`."""

log = logging.getLogger("permitwatch.kafka.topology")


class TopologyError(Misconfigured):
    """The topics on the broker do not match the configuration (e.g. a partition count)."""


def _milliseconds(days: float) -> str:
    return "-1" if days < 0 else str(int(days * DAY_MS))


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    key: str
    """What the record key is (every record of one key lands in one partition, in order)."""
    what: str
    configs: dict[str, str] = field(default_factory=dict)
    """Topic configs set at creation: `cleanup.policy` and its retention for the topics
    permitwatch creates; what is checked of a changelog faust creates (`Topology.city_changelog`)."""


@dataclass(frozen=True, slots=True)
class Topology:
    prefix: str
    partitions: int
    replication: int = 1
    events_retention_days: float = 90
    """How long events, dead letters and the city stage's input are kept (-1: for ever)."""
    versions_kept_days: float = 30
    """Every alert record and referral version stays on its compacted topic at least this long;
    after it, compaction may leave only the latest of each alert or referral (-1: never compacted)."""
    max_record_bytes: int = MAX_RECORD_BYTES
    """The largest record of the topics whose records grow with a case's red alerts: the referrals
    and the city stage's changelog (its referrals' working copies)."""

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
        retained = {"cleanup.policy": "delete", "retention.ms": _milliseconds(self.events_retention_days)}
        if self.versions_kept_days < 0:
            versions = {"cleanup.policy": "delete", "retention.ms": "-1"}
        else:
            versions = {"cleanup.policy": "compact", "min.compaction.lag.ms": _milliseconds(self.versions_kept_days)}
        return [
            TopicSpec(self.events, n, "case id", "input: CloudEvents; the workers' control records (clock ticks, "
                      "reference changes)", {**retained, "max.message.bytes": str(self.max_record_bytes)}),
            TopicSpec(self.dead_letter, n, "origin", "what could not become an event, with its bytes, reason and "
                      "source", {**retained, "max.message.bytes": str(self.max_record_bytes)}),
            TopicSpec(self.alerts, n, "alert id", "alert records: the latest of each alert is its current state",
                      versions),
            TopicSpec(self.referrals, n, "referral id", "referral versions: the latest of each referral is its "
                      "current state", {**versions, "max.message.bytes": str(self.max_record_bytes)}),
            TopicSpec(self.catalog, 1, "item code", "reference: the item catalog", {"cleanup.policy": "compact"}),
            TopicSpec(self.calendar, 1, "calendar version", "reference: calendar overrides",
                      {"cleanup.policy": "compact"}),
            TopicSpec(self.actions, 1, "alert or referral id", "operators' actions (acknowledge, assign, dismiss, "
                      "exempt), written and read back by every API instance: the audit trail, one order, kept for "
                      "ever", {"cleanup.policy": "delete", "retention.ms": "-1"}),
            TopicSpec(self.city, 1, "case id", "internal: what the cases tell the city stage (PW-013 standings, "
                      "red alerts, case reports, exemptions) and the events partitions' clocks", retained),
        ]

    def city_changelog(self, group: str) -> TopicSpec:
        """The city stage's table changelog, which faust creates for the workers' `group` with
        these configs: its records are the referrals' working copies, as large as a version."""
        return TopicSpec(f"{group}-{CITY_TABLE}-changelog", 1, "referral, item or case id",
                         "internal: the city stage's table (created by faust)",
                         {"max.message.bytes": str(self.max_record_bytes)})


async def ensure_topics(bootstrap: str, topology: Topology, group: str | None = None) -> list[str]:
    """Create the topics that are missing, with their configs; fail when an existing one has another
    partition count (a topic created by a producer with the broker's default would break
    co-partitioning) or another cleanup policy (an alerts topic from before alerts were keyed by
    alert id: compacting it would drop records). Returns the names created; a retention that
    differs from the settings is logged (an operator may have changed it on purpose), and so is
    a record size of the workers' `group`'s city changelog, when it exists, that differs (a
    changelog made before 2026-12-01 takes 1 MB, and the first referral past it stops the workers)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="permitwatch-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        specs = topology.specs()
        missing = [spec for spec in specs if spec.name not in existing]
        if missing:
            response = await admin.create_topics([
                NewTopic(spec.name, spec.partitions, topology.replication, topic_configs=spec.configs)
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
        checked = list(specs)
        changelog = topology.city_changelog(group) if group is not None else None
        if changelog is not None and changelog.name in existing:
            checked.append(changelog)  # faust makes it; checked once it exists
        _check_configs(checked, await _configs(admin, [spec.name for spec in checked]))
        return [spec.name for spec in missing]
    finally:
        await admin.close()


async def _configs(admin, topics: list[str]) -> dict[str, dict[str, str]]:
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    found = {}
    for response in await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in topics]):
        for resource in response.resources:
            found[resource[3]] = {entry[0]: entry[1] for entry in resource[4]}
    return found


async def topic_configs(bootstrap: str, topics: list[str]) -> dict[str, dict[str, str]]:
    """Topic name → its configs as the broker reports them."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="permitwatch-admin")
    await admin.start()
    try:
        return await _configs(admin, topics)
    finally:
        await admin.close()


def _check_configs(specs: list[TopicSpec], found: dict[str, dict[str, str]]) -> None:
    policies = [f"{spec.name} has cleanup.policy={found[spec.name].get('cleanup.policy')}, expected "
                f"{spec.configs['cleanup.policy']}" for spec in specs
                if spec.name in found and "cleanup.policy" in spec.configs
                and found[spec.name].get("cleanup.policy") != spec.configs["cleanup.policy"]]
    if policies:
        raise TopologyError("; ".join(policies) + " (topics made by permitwatch before 2026-11-30 keyed alerts by "
                            "case id, and compacting them would drop alert records: see docs/kafka.md, "
                            "\"Upgrading the topics\")")
    for spec in specs:
        for name, value in spec.configs.items():
            actual = found.get(spec.name, {}).get(name)
            if actual is not None and actual != value:
                log.warning("%s has %s=%s where the settings say %s; left as it is (change it with kafka-configs "
                            "if the settings are right)", spec.name, name, actual, value)
