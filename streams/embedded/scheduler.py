"""Fires deadlines on the clock: sleeps until the engine's earliest timer, then ticks.

The timer index gives the next instant directly, so waiting costs nothing however many cases are
open; an ingest that schedules an earlier deadline wakes the scheduler (`poke`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

from permitwatch.streams.clocks import Clock
from permitwatch.streams.embedded.monitor import EmbeddedMonitor
from permitwatch.streams.store import StoreError

log = logging.getLogger("permitwatch.scheduler")


class DeadlineScheduler:
    def __init__(self, monitor: EmbeddedMonitor, clock: Clock, idle_seconds: float = 30.0):
        self.monitor = monitor
        self.clock = clock
        self.idle_seconds = idle_seconds
        self.running = False
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def health(self) -> tuple[bool, str]:
        """The readiness check of the deadlines: they fire only while the scheduler runs."""
        return self.running, "scheduler running" if self.running else "scheduler stopped"

    def poke(self) -> None:
        """Called (from any thread) when new input may have scheduled an earlier deadline."""
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self.monitor.listeners.append(self.poke)
        self.running = True
        try:
            while True:
                # Cleared before ticking: a poke during the tick or after it is never lost.
                self._wake.clear()
                upcoming = await asyncio.to_thread(self._tick)
                delay = self.idle_seconds if upcoming is None else self.clock.seconds_until(upcoming)
                delay = min(max(delay, 0.0), self.idle_seconds)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)
        finally:
            self.running = False
            self.monitor.listeners.remove(self.poke)

    def _tick(self) -> datetime | None:
        """Fire what is due; the next deadline. Both take the monitor's lock, which a batch holds
        while it is judged: waiting for it on the event loop stalled every request."""
        try:
            self.monitor.tick()
        except StoreError as exc:
            log.error("deadlines not fired: %s", exc)
        return self.monitor.next_deadline()
