"""How old a worker's RocksDB table files may be and still be restored on.

A restart restores a table partition from its local files plus the changelog after the offset they
record (docs/kafka.md, delivery guarantees). That is only right while the changelog still holds
every deletion made since: a compacted changelog keeps a deleted key's tombstone for
`delete.retention.ms` (Kafka's default: 24 hours) and then drops it, so a restore on older files
would bring deleted keys back (a retired case with its timers, a city input applied twice). Files
untouched for longer than `MAX_AGE_SECONDS` are therefore not restored on: found at start, they
are deleted; found when this process gets a partition back that it let go of that long ago, the
worker deletes them and stops, and its restart restores that partition from the changelog alone.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("permitwatch.kafka.worker")

MAX_AGE_SECONDS = 12 * 3600
"""Half of Kafka's default `delete.retention.ms`, for the margin a restore takes."""

TablePartition = tuple[str, int]
"""(table name, partition)."""

_PARTITION_DIR = re.compile(r"^(?P<table>.+)-(?P<partition>\d+)\.db$")


def partition_dirs(tabledir: Path) -> dict[TablePartition, Path]:
    """The RocksDB directory of each table partition under faust's table directory."""
    found = {}
    for path in tabledir.glob("*.db") if tabledir.is_dir() else ():
        match = _PARTITION_DIR.match(path.name)
        if match and path.is_dir():
            found[(match["table"], int(match["partition"]))] = path
    return found


def discard_stale(tabledir: Path, now: float, max_age: float = MAX_AGE_SECONDS) -> list[TablePartition]:
    """Delete the table partitions whose newest file is older than `max_age` seconds at `now`
    (wall-clock seconds, as file times are); return the partitions kept."""
    kept = []
    for key, path in sorted(partition_dirs(tabledir).items()):
        newest = max((entry.stat().st_mtime for entry in path.iterdir()), default=0.0)
        if now - newest > max_age:
            log.warning("local table files of %s %s untouched for %.0f hours: deleted, restored from the changelog",
                        *key, (now - newest) / 3600)
            shutil.rmtree(path)
        else:
            kept.append(key)
    return kept


class HeldPartitions:
    """Which table partitions this process holds (active or standby: faust keeps both up to date)
    and when it let go of the others whose files are on disk, to tell when files it gets back went
    untouched for longer than the changelog keeps deletions. `now` is monotonic seconds."""

    def __init__(self, on_disk: Iterable[TablePartition], now: float, max_age: float = MAX_AGE_SECONDS):
        self.max_age = max_age
        self.released: dict[TablePartition, float] = {key: now for key in on_disk}
        self.held: set[TablePartition] = set()

    def assign(self, keys: Iterable[TablePartition], now: float) -> list[TablePartition]:
        """Hold `keys` (the whole assignment); return those newly held whose files are too old."""
        keys = set(keys)
        stale = sorted(key for key in keys - self.held
                       if key in self.released and now - self.released[key] > self.max_age)
        for key in self.held - keys:
            self.released[key] = now
        for key in keys:
            self.released.pop(key, None)
        self.held = keys
        return stale
