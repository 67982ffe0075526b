"""Server settings (pydantic-settings): command-line flags override `PERMITWATCH_*` environment
variables, which override the defaults below."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path
from typing import Literal

from pydantic import Field

from permitwatch.models.common import LEGAL_TZ
from permitwatch.streams.settings import KafkaSettings, RuntimeSettings

DEMO_START = date(2026, 3, 2)


class ServerSettings(RuntimeSettings, KafkaSettings):
    """The embedded runtime by default; with `kafka` set, the API and console over the Kafka topics."""

    data_dir: Path = Field(Path("permitwatch-data"), description="Database, checkpoint, tokens, demo files")
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    catalog: Path | None = Field(None, description="Item catalog file; the demo uses a sample catalog")
    calendars: list[Path] = Field(default_factory=list, description="Calendar override files")
    tokens_file: Path | None = Field(None, description="Token file (hashes); default data_dir/tokens.json")
    synchronous: Literal["FULL", "NORMAL"] = Field(
        "FULL", description="SQLite durability: FULL survives power loss, NORMAL only a process crash")
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    exemption_wait_seconds: float = Field(15, ge=0, description=(
        "How long POST /referrals/{id}/exemption waits for the new version before answering 202"))
    checkpoint_every_seconds: float = Field(300, gt=0)
    demo: bool = False
    demo_seed: int = 1
    demo_violation_rate: float = Field(0.3, ge=0, le=1)
    demo_cases_per_day: int = Field(60, ge=1)

    @property
    def simulated_clock(self) -> tuple[datetime, float] | None:
        """The demo defaults to 2026-03-02 08:30 at one day per minute."""
        if self.demo:
            start = self.clock_start or datetime.combine(DEMO_START, time(8, 30), LEGAL_TZ)
            return RuntimeSettings(clock_start=start, clock_speed=self.clock_speed or 1440.0).simulated_clock
        return super().simulated_clock

    @property
    def database(self) -> Path:
        return self.data_dir / "permitwatch.sqlite"

    @property
    def token_path(self) -> Path:
        return self.tokens_file or self.data_dir / "tokens.json"
