"""What the HTTP API needs from a runtime, as one object the routes depend on."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from permitwatch.api.auth import Authenticator
from permitwatch.api.read_model import ReadModel
from permitwatch.models.calendar import CalendarOverride
from permitwatch.models.catalog import Catalog
from permitwatch.models.settings import RuleSettings
from permitwatch.models.views import ActionRecord
from permitwatch.streams.embedded.monitor import IngestResult, RawInput
from permitwatch.streams.embedded.store import Store
from permitwatch.streams.metrics import Metrics


class MonitorPort(Protocol):
    """The runtime behind the API: the embedded monitor, or the Kafka topics."""

    def ingest(self, inputs: list[RawInput]) -> IngestResult: ...

    def dead_letter(self, origin: str, category: str, reason: str, raw: bytes) -> None: ...

    def update_reference(self, kind: str, raw: bytes) -> object: ...

    def referral_case(self, referral_or_case_id: str) -> str | None: ...

    def act(self, action: ActionRecord) -> ActionRecord:
        """Record an operator's action in the audit trail; the result carries the sequence number
        the trail gave it (the given `seq` is ignored)."""
        ...

    def reference(self) -> tuple[Catalog, list[CalendarOverride], RuleSettings]: ...

    def now(self) -> datetime:
        """The runtime's clock (the real time, or a simulated one)."""
        ...

    def ready(self) -> tuple[bool, str]: ...

    def refresh_gauges(self) -> None: ...


@dataclass
class Services:
    store: Store
    monitor: MonitorPort
    auth: Authenticator
    metrics: Metrics
    max_body_bytes: int = 16 * 1024 * 1024
    exemption_wait_seconds: float = 15
    read: ReadModel = field(init=False)

    def __post_init__(self) -> None:
        self.read = ReadModel(self.store)
