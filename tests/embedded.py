"""Starting the embedded runtime in a test: a temporary data directory, a manual clock, tokens."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson
from fastapi.testclient import TestClient

from permitwatch.api import compose
from permitwatch.api.compose import Embedded
from permitwatch.streams.clocks import ManualClock
from permitwatch.streams.settings import Settings
from tests.factory import moment
from tests.scenarios import ITEMS


@dataclass
class Runtime:
    embedded: Embedded
    client: TestClient
    clock: ManualClock
    tokens: dict[str, str]
    stopped: bool = False

    def auth(self, role: str = "operator") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def post(self, events, role: str = "ingest"):
        body = b"\n".join(orjson.dumps(e.model_dump(mode="json")) for e in events)
        return self.client.post("/events", content=body,
                                headers={**self.auth(role), "Content-Type": "application/x-ndjson"})

    def advance(self, when: str) -> None:
        self.clock.set(moment(when))
        self.embedded.monitor.tick()

    def stop(self) -> None:
        """Shut down (idempotent): the app's background tasks, then the checkpoint and the lock."""
        if self.stopped:
            return
        self.stopped = True
        self.client.__exit__(None, None, None)
        self.embedded.close()


def write_catalog(directory: Path) -> Path:
    path = directory / "catalog.json"
    path.write_bytes(orjson.dumps(ITEMS.model_dump(mode="json")))
    return path


def start(tmp_path: Path, now: str = "2026-03-02 08:00", **settings) -> Runtime:
    clock = ManualClock(moment(now))
    config = Settings(data_dir=tmp_path, catalog=write_catalog(tmp_path), **settings)
    embedded = compose.embedded(config, clock)
    client = TestClient(embedded.app)
    client.__enter__()
    return Runtime(embedded, client, clock, embedded.new_tokens)
