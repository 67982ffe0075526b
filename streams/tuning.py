"""Process settings for long-running engines."""

from __future__ import annotations

import gc


def tune_gc() -> None:
    """Collect young objects less often and exempt everything alive at start-up from collection.

    The engine keeps many long-lived small objects (case states) and allocates many short-lived
    ones per event; CPython's default thresholds then spend a large share of the time in the
    cyclic collector. Reference counting still frees almost everything at once."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
