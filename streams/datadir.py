"""The data directory of a monitor (embedded) or of an API's read model (Kafka): what is kept
where, and the lock that lets one process at a time write it."""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from permitwatch.models.errors import Misconfigured


class DataDirError(Misconfigured):
    """The data directory cannot be used; the message says why and what to do."""


class DataDirBusy(DataDirError):
    """Another permitwatch process holds the data directory."""


@dataclass(frozen=True)
class DataDir:
    root: Path
    tokens_file: Path | None = None
    """Where the token hashes are, when not in the directory (a mounted Secret)."""

    @property
    def database(self) -> Path:
        """The SQLite store: journal (embedded), read model, actions, dead letters."""
        return self.root / "permitwatch.sqlite"

    @property
    def checkpoint(self) -> Path:
        """The engine's last checkpoint (embedded)."""
        return self.root / "permitwatch.checkpoint"

    @property
    def tokens(self) -> Path:
        return self.tokens_file or self.root / "tokens.json"

    @property
    def demo_ground_truth(self) -> Path:
        """What each demo case must raise, for `permitwatch demo check`."""
        return self.root / "demo-ground-truth.jsonl"

    def hold(self) -> int:
        """An exclusive lock on the directory for this process's lifetime (one writer only); the
        file descriptor to close when done."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            handle = os.open(self.root / ".lock", os.O_CREAT | os.O_RDWR, 0o600)
        except OSError as exc:
            raise DataDirError(f"{self.root} cannot be written ({exc.strerror}): the journal and state are kept "
                               "there; check the mount and permissions, or choose another --data-dir") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            raise DataDirBusy(f"{self.root} is in use by another permitwatch process (a running `permitwatch run`?); "
                              "stop it first") from None
        return handle
