"""Server settings (pydantic-settings): command-line flags override `PERMITWATCH_*` environment
variables, which override the defaults below."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.common import LEGAL_TZ

DEMO_START = date(2026, 3, 2)


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PERMITWATCH_", extra="ignore")

    data_dir: Path = Field(Path("permitwatch-data"), description="Database, checkpoint, tokens, demo files")
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    catalog: Path | None = Field(None, description="Item catalog file; the demo uses a sample catalog")
    calendars: list[Path] = Field(default_factory=list, description="Calendar override files")
    rule_settings: Path | None = Field(None, description="Rule settings file (docs/rules.md)")
    tokens_file: Path | None = Field(None, description="Token file (hashes); default data_dir/tokens.json")
    synchronous: Literal["FULL", "NORMAL"] = Field(
        "FULL", description="SQLite durability: FULL survives power loss, NORMAL only a process crash")
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    max_future_skew_seconds: float = Field(300, ge=0)
    checkpoint_every_seconds: float = Field(300, gt=0)
    clock_start: datetime | None = Field(None, description=(
        "Run on a simulated clock starting here (rehearsals, tests); default: the real time"))
    clock_speed: float | None = Field(None, gt=0, description="Simulated clock speed (1440 = a day per minute)")
    demo: bool = False
    demo_seed: int = 1
    demo_violation_rate: float = Field(0.3, ge=0, le=1)
    demo_cases_per_day: int = Field(60, ge=1)

    @property
    def simulated_clock(self) -> tuple[datetime, float] | None:
        """(start, speed) of the simulated clock, or None for the real time. The demo defaults to
        2026-03-02 08:30 at one day per minute."""
        start, speed = self.clock_start, self.clock_speed
        if self.demo:
            start = start or datetime.combine(DEMO_START, time(8, 30), LEGAL_TZ)
            speed = speed or 1440.0
        if start is None:
            return None
        if start.tzinfo is None:
            raise ValueError("clock_start needs a timezone, e.g. 2026-03-02T08:30+08:00")
        return start, speed or 1.0

    @property
    def database(self) -> Path:
        return self.data_dir / "permitwatch.sqlite"

    @property
    def token_path(self) -> Path:
        return self.tokens_file or self.data_dir / "tokens.json"
