"""The worker's consumer below faust's streams (`streams/kafka/batches.py`), the parts that need
no broker."""

from __future__ import annotations

import asyncio
import inspect
import time

from permitwatch.streams.kafka.batches import pace_empty_fetches


class _Fetcher:
    """aiokafka's fetcher as `pace_empty_fetches` sees it: a fetch from a node says whether it
    brought records."""

    def __init__(self, brings: list[bool]):
        self.brings = brings

    async def _proc_fetch_request(self, assignment, node_id, request) -> bool:
        return self.brings.pop(0)


def test_a_fetch_that_brought_nothing_is_not_repeated_before_the_pause_and_one_with_records_is_not_held():
    fetcher = _Fetcher([False, True])
    pace_empty_fetches(fetcher, pause=0.2)

    async def timed() -> list[tuple[bool, float]]:
        results = []
        for _ in range(2):
            started = time.monotonic()
            brought = await fetcher._proc_fetch_request(None, 0, None)
            results.append((brought, time.monotonic() - started))
        return results

    (empty, empty_took), (full, full_took) = asyncio.run(timed())
    assert not empty and empty_took >= 0.2
    assert full and full_took < 0.2


def _cancelled(fetcher, after: float = 0.05) -> tuple[bool, float]:
    """What a paced fetch returns when cancelled `after` seconds in, and how long it took to end."""

    async def cancelled() -> tuple[bool, float]:
        fetch = asyncio.ensure_future(fetcher._proc_fetch_request(None, 0, None))
        await asyncio.sleep(after)
        fetch.cancel()
        started = time.monotonic()
        return await asyncio.wait_for(fetch, 5), time.monotonic() - started

    return asyncio.run(cancelled())


def test_a_fetch_cancelled_in_its_pause_ends_as_aiokafkas_own_does_so_that_the_consumer_stops():
    """aiokafka's `Fetcher.close` cancels its pending fetches and awaits them without catching:
    its own fetch returns False when cancelled, and so must the pause."""
    fetcher = _Fetcher([False])
    pace_empty_fetches(fetcher, pause=30)
    brought, took = _cancelled(fetcher)
    assert brought is False and took < 1


def test_a_fetch_cancelled_while_it_fetches_ends_at_once_without_its_pause():
    """aiokafka's fetch catches its cancellation and returns False: that is no empty fetch to pace."""

    class Fetching:
        async def _proc_fetch_request(self, assignment, node_id, request) -> bool:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                return False
            return True

    fetcher = Fetching()
    pace_empty_fetches(fetcher, pause=30)
    brought, took = _cancelled(fetcher)
    assert brought is False and took < 1


def test_faust_starts_its_tables_as_the_declared_table_manager_does_without_the_wait():
    """`DeclaredTableManager.on_start` is faust's `TableManager.on_start` without its 1 s sleep:
    a faust release whose table manager does more at start must be looked at before it is used."""
    from faust.tables import TableManager

    lines = [line.strip() for line in inspect.getsource(TableManager.on_start).splitlines()[1:]]
    assert [line for line in lines if line and not line.startswith('"""')] == [
        "await self.sleep(1.0)", "if not self.should_stop:", "await self._update_channels()",
        "await self.recovery.start()"]
