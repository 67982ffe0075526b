"""The composition root: every runtime assembled from the one settings model (`streams.settings`).

The command line (`api/cli`) and the tests build runtimes here and nowhere else: the embedded
monitor with its HTTP app, scheduler and demo, the API over a Kafka deployment, a Kafka worker,
the engine of `replay` and of scorecards, and the monitor that loads history into a database.
What only some runtimes use is imported in the function that builds them: a Kafka worker has no
HTTP app, and importing FastAPI, the routes and the embedded monitor took about half a second of
every worker's start (a restarted worker judges again that much later)."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from permitwatch.alerts.clock import WorkingCalendar
from permitwatch.alerts.engine import Engine
from permitwatch.models.calendar import load_calendar
from permitwatch.models.catalog import Catalog, load_catalog
from permitwatch.models.settings import RuleSettings, load_settings
from permitwatch.streams.clocks import Clock, DemoClock, ManualClock
from permitwatch.streams.settings import DEFAULT_BROKER, Settings
from permitwatch.streams.tuning import tune_gc

if TYPE_CHECKING:
    from fastapi import FastAPI

    from permitwatch.api.auth import Authenticator
    from permitwatch.streams.datadir import DataDir
    from permitwatch.streams.embedded.monitor import EmbeddedMonitor
    from permitwatch.streams.embedded.scheduler import DeadlineScheduler
    from permitwatch.streams.store import Store

log = logging.getLogger("permitwatch.compose")

# ----- reference data and the engine -----


def load_reference(settings: Settings) -> tuple[Catalog, WorkingCalendar, RuleSettings]:
    """The catalog, calendar and rule settings the files of `settings` give (defaults for none)."""
    return (
        load_catalog(settings.catalog) if settings.catalog else Catalog(),
        WorkingCalendar.of([load_calendar(path) for path in settings.calendars]),
        load_settings(settings.rule_settings),
    )


def engine(settings: Settings) -> Engine:
    """The engine of `replay`: old cases retire to a compact store, as in the runtimes."""
    from permitwatch.streams.retired import CompactCases

    catalog, calendar, rule_settings = load_reference(settings)
    tune_gc()
    return Engine(catalog.by_code(), calendar, rule_settings, retired=CompactCases())


# ----- the embedded monitor -----


@dataclass
class Embedded:
    app: FastAPI
    monitor: EmbeddedMonitor
    scheduler: DeadlineScheduler
    new_tokens: dict[str, str]
    """Tokens created on this start (shown once; only their hashes are kept)."""
    data_dir_lock: int
    """Held while the runtime lives: no second process writes the same database."""

    def close(self) -> None:
        self.monitor.try_checkpoint()
        self.monitor.store.close()
        os.close(self.data_dir_lock)


def ensure_tokens(data: DataDir) -> tuple[Authenticator, dict[str, str]]:
    """The token file, made with one token per role on the first start (returned: shown once)."""
    from permitwatch.api.auth import Authenticator, new_token, write_token_file

    if data.tokens.exists():
        return Authenticator.from_file(data.tokens), {}
    created, entries = {}, []
    for name, roles in (("admin", ["admin"]), ("operator", ["operator"]), ("ingest", ["ingest"])):
        token, entry = new_token(name, roles)
        created[name] = token
        entries.append(entry)
    write_token_file(data.tokens, entries)
    return Authenticator(entries, data.tokens), created


def embedded(settings: Settings, clock: Clock | None = None) -> Embedded:
    """`permitwatch run`; `clock` replaces the wall (or demo) clock, for tests."""
    from permitwatch.api.app import create_app
    from permitwatch.api.services import Services
    from permitwatch.streams.embedded.monitor import EmbeddedMonitor, MonitorOptions
    from permitwatch.streams.embedded.scheduler import DeadlineScheduler
    from permitwatch.streams.metrics import Metrics
    from permitwatch.streams.simulation.city import CitySimulator
    from permitwatch.streams.simulation.demo import DemoFeeder
    from permitwatch.streams.simulation.sample_catalog import SAMPLE_CATALOG
    from permitwatch.streams.store import Store

    data = settings.data
    lock = data.hold()
    catalog, calendar, rule_settings = load_reference(settings)
    if settings.demo and not catalog.items:
        catalog = SAMPLE_CATALOG
    if clock is None:
        clock = settings.make_clock()
    store = Store(data.database, settings.synchronous)
    monitor = EmbeddedMonitor(
        store, catalog, list(calendar.overrides), rule_settings, clock, Metrics("embedded"),
        MonitorOptions(max_future_skew=timedelta(seconds=settings.max_future_skew_seconds),
                       checkpoint_every_seconds=settings.checkpoint_every_seconds),
        data.checkpoint,
    )
    if isinstance(clock, DemoClock) and store.meta("clock") is not None:
        # A restarted simulated clock continues from where it stopped, not from its start.
        clock = DemoClock(max(clock.start, datetime.fromisoformat(store.meta("clock"))), clock.speed)
        monitor.clock = clock
    monitor.recover()
    if not monitor.catalog.items:
        log.warning("no item catalog: every item is unknown, judged with the law's defaults (20 working days, no "
                    "promise) and without the rules that need the catalog (PW-006, PW-009, PW-010, PW-013, PW-015); "
                    "start with --catalog FILE or PUT /catalog")
    tune_gc()
    auth, created = ensure_tokens(data)
    scheduler = DeadlineScheduler(monitor, clock)
    demo_run = _next_demo_run(store) if settings.demo else ""
    services = Services(runtime=monitor, auth=auth, checks={"deadlines": scheduler.health},
                        max_body_bytes=settings.max_body_bytes, exemption_wait_seconds=settings.exemption_wait_seconds)

    def background() -> list:
        jobs = [scheduler.run()]
        if settings.demo:
            simulator = CitySimulator(seed=settings.demo_seed, violation_rate=settings.demo_violation_rate,
                                      start=clock.now().date(), cases_per_day=settings.demo_cases_per_day,
                                      namespace=demo_run)
            jobs.append(DemoFeeder(monitor, clock, simulator, data.demo_ground_truth).run())
        return jobs

    return Embedded(create_app(services, background), monitor, scheduler, created, lock)


def _next_demo_run(store: Store) -> str:
    """Each start of the demo gets its own id namespace: a restart must not reuse case or event
    ids (events would be ignored as duplicates, cases merged)."""
    run = int(store.meta("demo_runs") or 0) + 1
    with store.write_lock, store.transaction() as tx:
        store.set_meta(tx, "demo_runs", str(run))
    return "" if run == 1 else f"R{run}-"


def history_monitor(settings: Settings, start: datetime) -> tuple[EmbeddedMonitor, ManualClock, int]:
    """`permitwatch import` into a database: a monitor on a clock that follows the history from
    `start`, and the data directory's lock (to close when done)."""
    from permitwatch.streams.embedded.history import HISTORY
    from permitwatch.streams.embedded.monitor import EmbeddedMonitor
    from permitwatch.streams.store import Store

    data = settings.data
    lock = data.hold()
    catalog, calendar, rule_settings = load_reference(settings)
    clock = ManualClock(start)
    monitor = EmbeddedMonitor(Store(data.database), catalog, list(calendar.overrides), rule_settings, clock,
                              options=HISTORY, checkpoint_path=data.checkpoint)
    monitor.recover()
    tune_gc()
    return monitor, clock, lock


# ----- Kafka -----


@dataclass
class KafkaApi:
    app: FastAPI
    monitor: object
    new_tokens: dict[str, str]
    data_dir_lock: int

    def close(self) -> None:
        self.monitor.store.close()
        os.close(self.data_dir_lock)


def kafka_api(settings: Settings) -> KafkaApi:
    """`permitwatch api`: ingest produces to the events topic, the read model follows the output
    topics into the data directory (a cache: deleting it rebuilds it from Kafka)."""
    from permitwatch.api.app import create_app
    from permitwatch.api.services import Services
    from permitwatch.streams.kafka.gateway import KafkaMonitor
    from permitwatch.streams.metrics import Metrics
    from permitwatch.streams.store import Store

    data = settings.data
    lock = data.hold()
    store = Store(data.database, settings.synchronous)
    monitor = KafkaMonitor(settings.bootstrap, settings.topology, store, load_settings(settings.rule_settings),
                           settings.make_clock(), Metrics("kafka-api"), settings.producer_options)
    auth, created = ensure_tokens(data)
    services = Services(runtime=monitor, auth=auth, max_body_bytes=settings.max_body_bytes,
                        exemption_wait_seconds=settings.exemption_wait_seconds)
    return KafkaApi(create_app(services, monitor.jobs), monitor, created, lock)


def kafka_worker(settings: Settings):
    """`permitwatch worker`: the topics made (or checked), the reference data read, the faust app
    with its two stages; `streams.kafka.worker.serve` runs it."""
    from permitwatch.streams.kafka.reference import ReferenceData
    from permitwatch.streams.kafka.topology import ensure_topics
    from permitwatch.streams.kafka.worker import Worker, WorkerSetupError

    if not settings.kafka:
        settings = settings.model_copy(update={"kafka": DEFAULT_BROKER})
    try:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorkerSetupError(f"the state directory {settings.state_dir} cannot be made ({exc.strerror}): check "
                               "the mount and permissions, or give another --state-dir") from None
    topology = settings.topology
    created = asyncio.run(ensure_topics(settings.bootstrap, topology, settings.group))
    if created:
        log.info("created topics: %s", ", ".join(created))
    reference = ReferenceData(topology, load_settings(settings.rule_settings))
    asyncio.run(reference.read(settings.bootstrap))
    log.info("reference data: %s catalog entries, calendars %s", len(reference.entries),
             ", ".join(sorted(reference.calendars)) or "built-in only")
    worker = Worker(settings, reference, settings.make_clock())
    tune_gc()
    return worker
