"""Retired cases, held compressed: what a case that left the engine's working set (closed or idle
past its retention) needs for a later event to be judged against its history (EVENTS.md, old
cases). About 850 bytes a case (`python -m bench.load retired`), against 2.3 KB as live objects."""

from __future__ import annotations

import zlib
from collections.abc import Iterator, MutableMapping

from permitwatch.alerts.case import CaseState
from permitwatch.streams import state_codec


class CompactCases(MutableMapping[str, CaseState]):
    """Case states by case id, each compressed (`state_codec.dumps_case`: JSON, read back without
    naming any class; entries written before 2026-12-01 are state pickles, still read)."""

    def __init__(self) -> None:
        self._packed: dict[str, bytes] = {}

    @classmethod
    def of(cls, packed: dict[str, bytes]) -> CompactCases:
        """A store of the cases `packed` holds as `packed` gives them (an engine checkpoint)."""
        store = cls()
        store._packed = packed
        return store

    @staticmethod
    def pack(case: CaseState) -> bytes:
        return zlib.compress(state_codec.dumps_case(case), 6)

    def packed(self) -> Iterator[tuple[str, bytes]]:
        """(case id, packed state) of every case: what a checkpoint copies without unpacking."""
        return iter(self._packed.items())

    def __getitem__(self, case_id: str) -> CaseState:
        return state_codec.loads(zlib.decompress(self._packed[case_id]))

    def __setitem__(self, case_id: str, case: CaseState) -> None:
        self._packed[case_id] = self.pack(case)

    def __delitem__(self, case_id: str) -> None:
        del self._packed[case_id]

    def __contains__(self, case_id: object) -> bool:
        return case_id in self._packed

    def __iter__(self) -> Iterator[str]:
        return iter(self._packed)

    def __len__(self) -> int:
        return len(self._packed)

    @property
    def size_bytes(self) -> int:
        """The compressed states' bytes (without the mapping's own overhead)."""
        return sum(len(packed) for packed in self._packed.values())
