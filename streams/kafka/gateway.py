"""The API's runtime on Kafka (`permitwatch api --kafka`): what the routes need from a monitor
(`api.services.MonitorPort`), over the topics the workers read and write.

Ingest validates each input with the contract models, as the embedded monitor does, and
produces the valid ones to the events topic (keyed by case id) and the others to the dead-letter
topic; a request is answered once the broker has them all. The workers judge: duplicates and
times too far ahead are theirs to find, and their dead letters reach the console through the
`Follower`. Reference data is published to the compacted topics and read back from them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from permitwatch.models.calendar import CalendarOverride
from permitwatch.models.catalog import Catalog
from permitwatch.models.errors import Unavailable
from permitwatch.models.events import InvalidEvent, parse_event_with_digest
from permitwatch.models.files import parse_structured
from permitwatch.models.settings import RuleSettings
from permitwatch.models.views import ActionRecord, IngestReport, ReferenceChange, Rejection
from permitwatch.streams.clocks import Clock, history_warning
from permitwatch.streams.kafka.follower import Follower
from permitwatch.streams.kafka.reference import ReferenceData, publish_reference
from permitwatch.streams.kafka.stages import dead_letter, event_output
from permitwatch.streams.kafka.topology import Topology, TopologyError, ensure_topics
from permitwatch.streams.kafka.wire import Output, action_value
from permitwatch.streams.metrics import Metrics
from permitwatch.streams.port import RawInput
from permitwatch.streams.store import Store

log = logging.getLogger("permitwatch.kafka.gateway")


class BrokerUnavailable(Unavailable):
    """Kafka did not take the records (not connected yet, or it failed them): nothing was accepted."""

SEND_TIMEOUT_SECONDS = 30
REFERENCE_REFRESH_SECONDS = 10
ACTION_VISIBLE_SECONDS = 15
ACTIONS_ON_TOPIC = "actions_on_topic"
"""Meta key: this read model's actions come from the actions topic (none of its own)."""


class KafkaMonitor:
    def __init__(self, bootstrap: str, topology: Topology, store: Store, rule_settings: RuleSettings,
                 clock: Clock, metrics: Metrics, producer_options: dict | None = None):
        self.bootstrap = bootstrap
        self.topology = topology
        self.store = store
        self.clock = clock
        self.metrics = metrics
        self.producer_options = producer_options or {}
        self.reference_data = ReferenceData(topology, rule_settings)
        self.listeners: list[Callable[[], None]] = []
        self.follower = Follower(bootstrap, topology, store, metrics, self._notify)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._producer: AIOKafkaProducer | None = None
        self._reading = asyncio.Lock()
        self._set_up = asyncio.Event()

    # ----- running -----

    def jobs(self) -> list[Coroutine]:
        """What runs while the API serves: the producer and reference reader, and the follower
        (once the topics exist and the read model's own actions, if any, are on the topic)."""
        return [self._connected(), self._following()]

    async def _following(self) -> None:
        await self._set_up.wait()
        await self.follower.run()

    async def _connected(self) -> None:
        self._loop = asyncio.get_running_loop()
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", client_id="permitwatch-api",
                                    **self.producer_options)
        while True:
            try:
                await producer.start()
                break
            except KafkaError as exc:
                log.warning("Kafka at %s not reachable (%s); retrying in 5 s", self.bootstrap, exc)
                await asyncio.sleep(5)
        self._producer = producer
        while not self._set_up.is_set():
            try:
                created = await ensure_topics(self.bootstrap, self.topology)
                if created:
                    log.info("created topics: %s", ", ".join(created))
                await self._move_local_actions()
                self._set_up.set()
            except (KafkaError, TopologyError, Unavailable) as exc:
                self.follower.error = f"{type(exc).__name__}: {exc}"
                log.warning("setting up the topics at %s failed (%s); retrying in 5 s", self.bootstrap, exc)
                await asyncio.sleep(5)
        try:
            while True:
                try:
                    await self._read_reference()
                except Exception as exc:
                    log.warning("reading the reference data failed: %s", exc)
                await asyncio.sleep(REFERENCE_REFRESH_SECONDS)
        finally:
            self._producer = None
            await producer.stop()

    async def _move_local_actions(self) -> None:
        """A read model written before actions went to the actions topic holds them itself,
        numbered by this instance alone. They are published to the topic, oldest first, and the
        local copies dropped; the follower reads them back under the topic's numbering. (A stop
        between the two publishes them again on the next start: the trail then shows them twice.)"""
        if self.store.meta(ACTIONS_ON_TOPIC) is not None:
            return
        local = self.store.actions()
        if local:
            await self._produce([Output(self.topology.actions, a.target_id.encode(), action_value(a)) for a in local])
            log.info("published %s operators' actions of this read model to %s", len(local), self.topology.actions)
        with self.store.write_lock, self.store.transaction() as tx:
            tx.execute("DELETE FROM actions")
            Store.set_meta(tx, ACTIONS_ON_TOPIC, "1")

    async def _read_reference(self) -> None:
        async with self._reading:
            await self.reference_data.read(self.bootstrap)
        self.metrics.expect_departments(self.reference_data.entries.values())

    def _call(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Run `coroutine` on the API's event loop from a worker thread (the routes call the
        monitor in a thread pool) and wait for it; Kafka failures become BrokerUnavailable (HTTP 503)."""
        if self._loop is None or self._producer is None:
            coroutine.close()
            raise BrokerUnavailable(f"not connected to Kafka at {self.bootstrap} yet")
        try:
            return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(SEND_TIMEOUT_SECONDS)
        except (KafkaError, TimeoutError) as exc:
            raise BrokerUnavailable(f"Kafka at {self.bootstrap} did not take the records: {type(exc).__name__} {exc}") from exc

    async def _produce(self, outputs: list[Output]) -> list:
        """Send all, then wait until the broker has them all; their record metadata, in order."""
        producer = self._producer
        pending = [await producer.send(out.topic, out.value, key=out.key, partition=out.partition)
                   for out in outputs]
        return [await delivery for delivery in pending]

    # ----- MonitorPort -----

    def ingest(self, inputs: list[RawInput]) -> IngestReport:
        result = IngestReport()
        outputs: list[Output] = []
        kinds: list[str] = []
        times: list[datetime] = []
        for index, item in enumerate(inputs):
            try:
                event, _ = parse_event_with_digest(item.raw)  # refused here, not by the workers
                outputs.append(event_output(self.topology, event, item.raw))
            except InvalidEvent as invalid:
                result.rejected.append(Rejection(index=index, category=invalid.category, reason=invalid.reason))
                outputs.append(dead_letter(self.topology, item.origin, invalid.category, invalid.reason, item.raw))
                continue
            kinds.append(event.kind)
            times.append(event.time)
        self._call(self._produce(outputs))
        result.accepted = len(kinds)
        warning = history_warning(times, self.clock.now())
        if warning:
            result.warnings.append(warning.replace("`permitwatch import`", "`permitwatch import --kafka`"))
        # Counted as sent, not as accepted: the workers count each one accepted when they judge it,
        # and a dashboard summing both over the deployment counted every event twice.
        for kind in kinds:
            self.metrics.events_sent.labels(kind).inc()
        for rejection in result.rejected:
            self.metrics.dead_letters.labels(rejection.category).inc()
        return result

    def dead_letter(self, origin: str, category: str, reason: str, raw: bytes) -> None:
        self._call(self._produce([dead_letter(self.topology, origin, category, reason, raw)]))
        self.metrics.dead_letters.labels(category).inc()

    def update_reference(self, kind: str, raw: bytes) -> ReferenceChange:
        """Publish a catalog (replacing the whole catalog) or a calendar override; the workers
        re-judge open cases when they read it, so the alerts it moves arrive on the topics."""
        if kind == "catalog":
            catalog, calendars = parse_structured(raw, Catalog, "catalog"), []
        else:
            catalog, calendars = None, [parse_structured(raw, CalendarOverride, "calendar")]
        self._call(publish_reference(self.bootstrap, self.topology, catalog, calendars, self.producer_options))
        self._call(self._read_reference())
        return ReferenceChange.of(kind, [])  # the workers re-judge; their alerts arrive on the topics

    def referral_case(self, referral_or_case_id: str) -> str | None:
        return self.store.referral_case(referral_or_case_id)

    def act(self, action: ActionRecord) -> ActionRecord:
        """The action goes to the actions topic, which every API instance follows; it is in the
        audit trail once the broker has it, numbered by its offset. The answer waits (up to
        ACTION_VISIBLE_SECONDS) until this instance's read model shows it too, so the operator's
        next read sees it."""
        if not self._set_up.is_set():  # the actions topic may not exist yet with its one partition
            raise BrokerUnavailable(f"Kafka at {self.bootstrap}: the topics are not set up yet")
        [delivered] = self._call(self._produce([Output(self.topology.actions, action.target_id.encode(),
                                                       action_value(action))]))
        recorded = action.model_copy(update={"seq": delivered.offset + 1})
        deadline = time.monotonic() + ACTION_VISIBLE_SECONDS
        while not self.store.has_action(recorded.seq) and time.monotonic() < deadline:
            time.sleep(0.05)
        return recorded

    def reference(self) -> tuple[Catalog, list[CalendarOverride], RuleSettings]:
        data = self.reference_data
        return data.catalog, list(data.calendars.values()), data.settings

    def now(self) -> datetime:
        return self.clock.now()

    def ready(self) -> tuple[bool, str]:
        follower = self.follower
        if follower.error:
            return False, f"Kafka at {self.bootstrap}: {follower.error}"
        if self._producer is None:
            return False, f"connecting to Kafka at {self.bootstrap}"
        if not follower.caught_up:
            return False, "reading the alerts, referrals and dead letters topics"
        return True, "following the Kafka topics"

    def refresh_gauges(self) -> None:
        self.metrics.journal_events.set(self.store.count("journal"))
        self.metrics.store_bytes.set(self.store.size_bytes())

    def _notify(self) -> None:
        for listener in list(self.listeners):
            listener()
