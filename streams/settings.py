"""Settings the runtimes share (pydantic-settings): command-line flags override `PERMITWATCH_*`
environment variables, which override the defaults below."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from permitwatch.streams.clocks import Clock, DemoClock, WallClock
from permitwatch.streams.kafka.topology import Topology


class RuntimeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PERMITWATCH_", extra="ignore")

    rule_settings: Path | None = Field(None, description="Rule settings file (docs/rules.md)")
    max_future_skew_seconds: float = Field(300, ge=0, description=(
        "An event claiming a time further ahead of the clock than this is refused: it would move the "
        "clock past real deadlines and raise false alerts"))
    clock_start: datetime | None = Field(None, description=(
        "Run on a simulated clock starting here (rehearsals, tests); default: the real time"))
    clock_speed: float | None = Field(None, gt=0, description="Simulated clock speed (1440 = a day per minute)")

    @property
    def simulated_clock(self) -> tuple[datetime, float] | None:
        """(start, speed) of the simulated clock, or None for the real time."""
        if self.clock_start is None:
            return None
        if self.clock_start.tzinfo is None:
            raise ValueError("clock_start needs a timezone, e.g. 2026-03-02T08:30+08:00")
        return self.clock_start, self.clock_speed or 1.0

    def make_clock(self) -> Clock:
        simulated = self.simulated_clock
        return WallClock() if simulated is None else DemoClock(*simulated)


class KafkaSettings(BaseSettings):
    """Where the Kafka runtime's topics are. The same values must be given to every worker and API
    instance of one deployment."""

    model_config = SettingsConfigDict(env_prefix="PERMITWATCH_", extra="ignore")

    kafka: str | None = Field(None, description="Kafka bootstrap servers, host:port[,host:port]")
    topic_prefix: str = Field("permitwatch", pattern=r"^[A-Za-z0-9._-]+$",
                              description="Topic names are PREFIX.events, PREFIX.alerts, …")
    partitions: int = Field(12, ge=1, le=10_000, description=(
        "Partitions of the events topic and of everything co-partitioned with it; fixed once created"))
    replication: int = Field(1, ge=1, description="Replication factor of the topics created (3 in production)")
    events_retention_days: float = Field(90, description=(
        "How long the events, dead-letter and city topics keep records (-1: for ever); set when the topics are "
        "created. A read model rebuilt later has the events of this period in its case timelines"))
    versions_kept_days: float = Field(30, description=(
        "Every alert record and referral version stays on its compacted topic at least this long, then "
        "compaction may leave only the latest of each (-1: no compaction, every version kept for ever); set when "
        "the topics are created"))
    producer_max_batch_size: int | None = Field(None, ge=1, description=(
        "Largest producer batch in bytes; only for brokers that mishandle multi-record batches"))

    @property
    def topology(self) -> Topology:
        return Topology(self.topic_prefix, self.partitions, self.replication, self.events_retention_days,
                        self.versions_kept_days)

    @field_validator("events_retention_days", "versions_kept_days")
    @classmethod
    def _days(cls, days: float) -> float:
        if days != -1 and days <= 0:
            raise ValueError("a number of days above 0, or -1 for ever")
        return days

    @property
    def producer_options(self) -> dict:
        """aiokafka producer options every producer of the deployment uses."""
        return {"max_batch_size": self.producer_max_batch_size} if self.producer_max_batch_size else {}

    @property
    def bootstrap(self) -> str:
        if not self.kafka:
            raise ValueError("no Kafka broker given (--kafka HOST:PORT or PERMITWATCH_KAFKA)")
        return ",".join(part.strip().removeprefix("kafka://") for part in self.kafka.split(","))
