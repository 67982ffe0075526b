"""RocksDB table files are restored on only while the changelog still holds every deletion made
since they were last touched (`streams/kafka/local_tables.py`)."""

from __future__ import annotations

import os

from permitwatch.streams.kafka.local_tables import MAX_AGE_SECONDS, HeldPartitions, discard_stale, partition_dirs

HOUR = 3600


def test_files_untouched_longer_than_the_changelog_keeps_deletions_are_deleted_at_start(tmp_path):
    now = 1_800_000_000.0
    for name, age in (("cases-0.db", 2 * HOUR), ("cases-1.db", 13 * HOUR), ("city-0.db", 0)):
        directory = tmp_path / name
        directory.mkdir()
        for file in ("000012.log", "MANIFEST-000009"):
            (directory / file).write_bytes(b"x")
            os.utime(directory / file, (now - age, now - age))
    (tmp_path / "cases-backups").mkdir()

    assert discard_stale(tmp_path, now) == [("cases", 0), ("city", 0)]
    assert sorted(partition_dirs(tmp_path)) == [("cases", 0), ("city", 0)]
    assert (tmp_path / "cases-backups").is_dir()
    assert discard_stale(tmp_path / "missing", now) == []


def test_a_partition_let_go_of_too_long_ago_is_stale_when_it_comes_back():
    held = HeldPartitions([("cases", 0), ("cases", 1)], now=0)
    assert held.assign({("cases", 0), ("city", 0)}, now=10) == []
    # cases 1 stayed on disk, unheld, since the start; cases 0 is let go of now.
    assert held.assign({("city", 0)}, now=20) == []
    late = 20 + MAX_AGE_SECONDS + 1
    assert held.assign({("city", 0), ("cases", 0), ("cases", 1)}, now=late) == [("cases", 0), ("cases", 1)]
    # Held all along (active or standby): never stale, however long.
    assert held.assign({("city", 0), ("cases", 0), ("cases", 1)}, now=late * 10) == []


def test_a_partition_back_soon_enough_or_never_on_disk_is_not_stale():
    held = HeldPartitions([], now=0)
    assert held.assign({("cases", 2)}, now=MAX_AGE_SECONDS * 2) == []  # no files: restored from the changelog
    assert held.assign(set(), now=MAX_AGE_SECONDS * 2 + 1) == []
    assert held.assign({("cases", 2)}, now=MAX_AGE_SECONDS * 2 + HOUR) == []
