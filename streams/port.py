"""The port between the faces (HTTP API, console, command line) and the runtimes (embedded, Kafka):
what a face may ask of a runtime, whichever it is. `EmbeddedMonitor` and `KafkaMonitor` implement
it; a third runtime implements it and gets the API, the console and the read model for nothing.

The read model is the SQLite `Store` (`streams/store.py`): the embedded runtime writes it as it
judges, the Kafka API follows the output topics into it; the faces query it through
`api/read_model.py` alone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple, Protocol

from permitwatch.models.calendar import CalendarOverride
from permitwatch.models.catalog import Catalog
from permitwatch.models.settings import RuleSettings
from permitwatch.models.views import ActionRecord, IngestReport, ReferenceChange
from permitwatch.streams.metrics import Metrics
from permitwatch.streams.store import Store


class RawInput(NamedTuple):
    """One input as it arrived: where from (for dead letters and reports) and its exact bytes."""

    origin: str
    raw: bytes


class Runtime(Protocol):
    """A runtime as the faces see it. Methods block (the API calls them in its thread pool) and
    raise `models.errors` errors: `Unavailable` when nothing could be stored, `InvalidInput` for a
    reference file that cannot be used."""

    store: Store
    """The read model the faces query."""
    metrics: Metrics
    listeners: list[Callable[[], None]]
    """Called, from any thread, after new outputs reach the read model (the SSE stream wakes)."""

    def ingest(self, inputs: list[RawInput]) -> IngestReport:
        """Validate and accept a batch (journalled, or on the broker, before it returns); invalid
        inputs are dead-lettered and reported."""
        ...

    def dead_letter(self, origin: str, category: str, reason: str, raw: bytes) -> None:
        """Keep input no event could be made of (a body that is not JSON), with its bytes."""
        ...

    def update_reference(self, kind: str, raw: bytes) -> ReferenceChange:
        """Replace the catalog or add a calendar override (`kind`), from a JSON or YAML file."""
        ...

    def reference(self) -> tuple[Catalog, list[CalendarOverride], RuleSettings]:
        """The reference data in force."""
        ...

    def referral_case(self, referral_or_case_id: str) -> str | None:
        """The case a referral is about, or None when there is no such referral."""
        ...

    def act(self, action: ActionRecord) -> ActionRecord:
        """Record an operator's action in the audit trail; the result carries the sequence number
        the trail gave it (the given `seq` is ignored)."""
        ...

    def now(self) -> datetime:
        """The runtime's clock (the real time, or a simulated one)."""
        ...

    def ready(self) -> tuple[bool, str]:
        """Whether the runtime judges (embedded: engine rebuilt; Kafka: the topics followed)."""
        ...

    def refresh_gauges(self) -> None:
        """Bring the gauges up to date before a scrape."""
        ...
