"""The one settings model of every command (pydantic-settings): command-line flags override
`PERMITWATCH_*` environment variables, which override the defaults below.

Each setting says which commands read it (`commands`): docs/operations.md (the embedded monitor)
and docs/kafka.md (the Kafka runtime) list them, checked by tests. A flag's destination is the
setting's name, so flags map to settings one way (`api/cli/common.py:settings_from`)."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from permitwatch.models.common import LEGAL_TZ
from permitwatch.streams.clocks import Clock, DemoClock, WallClock
from permitwatch.streams.datadir import DataDir
from permitwatch.streams.kafka.topology import MAX_RECORD_BYTES, Topology

DEMO_START = date(2026, 3, 2)
DEFAULT_BROKER = "localhost:9092"
"""Where a worker looks for Kafka when none is given."""

EMBEDDED = ("run", "import")
KAFKA = ("worker", "api", "reference", "import --kafka")
SERVERS = ("run", "api")
DEPLOYMENT = ("run", "api", "worker", "import", "import --kafka")
"""Who reads the reference data and clock of a deployment."""


def setting(default, description: str, commands: tuple[str, ...], **constraints):
    return Field(default, description=description, json_schema_extra={"commands": list(commands)}, **constraints)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PERMITWATCH_", extra="ignore")

    # ----- reference data and clock, every runtime -----
    catalog: Path | None = setting(None, "Item catalog file; the demo uses a sample catalog (on Kafka: published "
                                   "with `permitwatch reference`)", (*EMBEDDED, "reference"))
    calendars: Annotated[list[Path], NoDecode] = setting(
        [], "Calendar override files (in the environment variable: separated by commas)", (*EMBEDDED, "reference"))
    rule_settings: Path | None = setting(None, "Rule settings file (docs/rules.md); every worker of a deployment "
                                         "must have the same", DEPLOYMENT)
    max_future_skew_seconds: float = setting(300, (
        "An event (or tick) claiming a time further ahead of the clock than this is refused: it would move the "
        "clock past real deadlines and raise false alerts"), ("run", "worker"), ge=0)
    clock_start: datetime | None = setting(None, "Run on a simulated clock starting here (rehearsals, tests); "
                                           "default: the real time", ("run", "api", "worker"))
    clock_speed: float | None = setting(None, "Simulated clock speed (1440 = a day per minute)",
                                        ("run", "api", "worker"), gt=0)

    # ----- the HTTP servers and their data directory -----
    data_dir: Path = setting(Path("permitwatch-data"), "Database, checkpoint, tokens, demo files (on Kafka: the "
                             "API's read model, a cache of the topics)", (*SERVERS, "import"))
    host: str = setting("127.0.0.1", "Address to listen on", SERVERS)
    port: int = setting(8080, "Port to listen on", SERVERS, ge=1, le=65535)
    tokens_file: Path | None = setting(None, "Token file (hashes); default data_dir/tokens.json", SERVERS)
    synchronous: Literal["FULL", "NORMAL"] = setting(
        "FULL", "SQLite durability: FULL survives power loss, NORMAL only a process crash", SERVERS)
    max_body_bytes: int = setting(16 * 1024 * 1024, "Larger request bodies get 413", SERVERS, ge=1024)
    exemption_wait_seconds: float = setting(
        15, "How long POST /referrals/{id}/exemption waits for the new version before answering 202", SERVERS, ge=0)
    checkpoint_every_seconds: float = setting(300, "Engine checkpoint interval", ("run",), gt=0)
    demo: bool = setting(False, "Play a simulated city on a compressed clock", ("run",))
    demo_seed: int = setting(1, "The demo's random seed", ("run",))
    demo_violation_rate: float = setting(0.3, "Share of the demo's cases with a violation", ("run",), ge=0, le=1)
    demo_cases_per_day: int = setting(60, "Cases the demo city opens a day", ("run",), ge=1)

    # ----- Kafka: the same values on every worker and API instance of a deployment -----
    kafka: str | None = setting(None, f"Kafka bootstrap servers, host:port[,host:port] (a worker: default "
                                f"{DEFAULT_BROKER}; the API: none means the embedded monitor)", KAFKA)
    topic_prefix: str = setting("permitwatch", "Topic names are PREFIX.events, PREFIX.alerts, …", KAFKA,
                                pattern=r"^[A-Za-z0-9._-]+$")
    partitions: int = setting(12, "Partitions of the events topic and of everything co-partitioned with it; "
                              "fixed once created", KAFKA, ge=1, le=10_000)
    replication: int = setting(1, "Replication factor of the topics created (3 in production)", KAFKA, ge=1)
    events_retention_days: float = setting(90, (
        "How long the events, dead-letter and city topics keep records (-1: for ever); set when the topics are "
        "created. A read model rebuilt later has the events of this period in its case timelines"), KAFKA)
    versions_kept_days: float = setting(30, (
        "Every alert record and referral version stays on its compacted topic at least this long, then "
        "compaction may leave only the latest of each (-1: no compaction, every version kept for ever); set when "
        "the topics are created"), KAFKA)
    producer_max_batch_size: int | None = setting(512 << 10, (
        "Largest producer batch in bytes (1: one record per batch, for brokers that mishandle multi-record "
        "batches). At most 1 MiB, Kafka's default record size, which the topics created without their own "
        "(the case table's changelog, alerts, catalog, calendar, actions, city) keep; aiokafka's own 16 KiB cut "
        "a worker's batch into about a hundred record batches (a worker about 7% slower)"), KAFKA, ge=1,
        le=1 << 20)
    max_record_bytes: int = setting(MAX_RECORD_BYTES, (
        "Largest record of the events, dead-letter and referrals topics and the city stage's changelog, in bytes: "
        "their max.message.bytes (set when the topics are created) and every producer's limit. A referral version "
        "lists every red alert of its case, about 460 bytes each; an event over it is refused (too_large) and a "
        "dead letter over it says where its original is instead of copying it"), KAFKA, ge=1 << 20)

    # ----- a Kafka worker -----
    group: str = setting("permitwatch-worker", (
        "Consumer group and faust app id: the workers of one deployment share it; their tables' changelog topics "
        "are named after it"), ("worker",), pattern=r"^[A-Za-z0-9._-]+$")
    store: Literal["memory", "rocksdb"] = setting("memory", (
        "Where tables live: memory (rebuilt from the changelogs on every start), or rocksdb (on disk, for "
        "state larger than memory; a restart keeps the files and reads only the changelog after them; needs "
        "the rocksdict package)"), ("worker",))
    state_dir: Path = setting(Path("permitwatch-worker"), "faust's data directory: one per worker", ("worker",))
    group_instance_id: str | None = setting(None, (
        "Static group membership (e.g. the pod name of a StatefulSet): a restarted worker with the same id takes "
        "back its partitions at once instead of after its predecessor's session times out"), ("worker",))
    tick_interval_seconds: float = setting(1.0, "How often deadlines are checked", ("worker",), gt=0)
    standby_replicas: int = setting(1, "Standby copies of each table partition on other workers", ("worker",), ge=0)
    metrics_host: str = setting("0.0.0.0", "Address of a worker's Prometheus /metrics", ("worker",))
    metrics_port: int = setting(9464, "Port of a worker's Prometheus /metrics (0: none); one per worker on a host",
                                ("worker",), ge=0, le=65535)
    log_level: str = setting("INFO", "Log level", ("worker",))
    session_timeout_seconds: float | None = setting(None, "Consumer group session timeout (faust's default)",
                                                    ("worker",), gt=0)
    heartbeat_interval_seconds: float | None = setting(None, "Consumer heartbeat interval (faust's default)",
                                                       ("worker",), gt=0)
    rebalance_timeout_seconds: float | None = setting(None, "Rebalance timeout (faust's default)", ("worker",), gt=0)

    @field_validator("calendars", mode="before")
    @classmethod
    def _paths(cls, value):
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("events_retention_days", "versions_kept_days")
    @classmethod
    def _days(cls, days: float) -> float:
        if days != -1 and days <= 0:
            raise ValueError("a number of days above 0, or -1 for ever")
        return days

    # ----- derived -----

    @property
    def data(self) -> DataDir:
        return DataDir(self.data_dir, self.tokens_file)

    @property
    def simulated_clock(self) -> tuple[datetime, float] | None:
        """(start, speed) of the simulated clock, or None for the real time. The demo defaults to
        2026-03-02 08:30 at one day per minute."""
        start, speed = self.clock_start, self.clock_speed
        if self.demo:
            start, speed = start or datetime.combine(DEMO_START, time(8, 30), LEGAL_TZ), speed or 1440.0
        if start is None:
            return None
        if start.tzinfo is None:
            raise ValueError("clock_start needs a timezone, e.g. 2026-03-02T08:30+08:00")
        return start, speed or 1.0

    def make_clock(self) -> Clock:
        simulated = self.simulated_clock
        return WallClock() if simulated is None else DemoClock(*simulated)

    @property
    def topology(self) -> Topology:
        return Topology(self.topic_prefix, self.partitions, self.replication, self.events_retention_days,
                        self.versions_kept_days, self.max_record_bytes)

    @property
    def producer_options(self) -> dict:
        """aiokafka producer options every producer of the deployment uses."""
        options = {"max_request_size": self.max_record_bytes}
        if self.producer_max_batch_size:
            options["max_batch_size"] = self.producer_max_batch_size
        return options

    @property
    def bootstrap(self) -> str:
        if not self.kafka:
            raise ValueError("no Kafka broker given (--kafka HOST:PORT or PERMITWATCH_KAFKA)")
        return ",".join(part.strip().removeprefix("kafka://") for part in self.kafka.split(","))

    @classmethod
    def read_by(cls, command: str) -> list[str]:
        """The names of the settings `command` reads."""
        return [name for name, info in cls.model_fields.items()
                if command in (info.json_schema_extra or {}).get("commands", ())]
