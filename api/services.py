"""What the HTTP faces hold: the runtime behind them (`streams.port.Runtime`), who may call, the
limits, and the readiness checks, assembled by the composition root."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from permitwatch.api.auth import Authenticator
from permitwatch.api.read_model import ReadModel
from permitwatch.streams.port import Runtime

Check = Callable[[], tuple[bool, str]]
"""A readiness check: (ok, what it found)."""


@dataclass
class Services:
    runtime: Runtime
    auth: Authenticator
    checks: dict[str, Check] = field(default_factory=dict)
    """Readiness checks by name, besides the runtime's own ("engine") and the read model's
    ("database"): the embedded runtime adds its deadline scheduler."""
    max_body_bytes: int = 16 * 1024 * 1024
    exemption_wait_seconds: float = 15
    read: ReadModel = field(init=False)

    def __post_init__(self) -> None:
        self.read = ReadModel(self.runtime.store)

    def readiness(self) -> dict[str, tuple[bool, str]]:
        """Every check, by name (the read model's is run in the caller's thread: it writes)."""
        found = {"engine": self.runtime.ready(), "database": self.runtime.store.writable()}
        found.update({name: check() for name, check in self.checks.items()})
        return found
