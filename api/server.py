"""Assembling the embedded runtime: store, monitor, scheduler, demo feeder, HTTP app."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import FastAPI

from permitwatch.api.app import create_app
from permitwatch.api.auth import Authenticator, new_token, write_token_file
from permitwatch.api.services import Services
from permitwatch.api.settings import ServerSettings
from permitwatch.streams.clocks import Clock, DemoClock
from permitwatch.streams.demo import GROUND_TRUTH, DemoFeeder
from permitwatch.streams.embedded.monitor import EmbeddedMonitor, MonitorOptions
from permitwatch.streams.embedded.scheduler import DeadlineScheduler
from permitwatch.streams.importing import hold_data_dir
from permitwatch.streams.metrics import Metrics
from permitwatch.streams.sample_catalog import SAMPLE_CATALOG
from permitwatch.streams.setup import load_reference
from permitwatch.streams.simulate import CitySimulator
from permitwatch.streams.store import Store
from permitwatch.streams.tuning import tune_gc

log = logging.getLogger("permitwatch.server")


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


def ensure_tokens(settings: ServerSettings) -> tuple[Authenticator, dict[str, str]]:
    path = settings.token_path
    if path.exists():
        return Authenticator.from_file(path), {}
    created, entries = {}, []
    for name, roles in (("admin", ["admin"]), ("operator", ["operator"]), ("ingest", ["ingest"])):
        token, entry = new_token(name, roles)
        created[name] = token
        entries.append(entry)
    write_token_file(path, entries)
    return Authenticator(entries), created


def build_embedded(settings: ServerSettings, clock: Clock | None = None) -> Embedded:
    """`clock` replaces the wall (or demo) clock, for tests."""
    lock = hold_data_dir(settings.data_dir)
    catalog, calendar, rule_settings = load_reference(settings.catalog, settings.calendars, settings.rule_settings)
    if settings.demo and not catalog.items:
        catalog = SAMPLE_CATALOG
    if clock is None:
        clock = settings.make_clock()
    store = Store(settings.database, settings.synchronous)
    metrics = Metrics("embedded")
    monitor = EmbeddedMonitor(
        store, catalog, list(calendar.overrides), rule_settings, clock, metrics,
        MonitorOptions(max_future_skew=timedelta(seconds=settings.max_future_skew_seconds),
                       checkpoint_every_seconds=settings.checkpoint_every_seconds),
        settings.data_dir / "permitwatch.checkpoint",
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
    auth, created = ensure_tokens(settings)
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
            jobs.append(DemoFeeder(monitor, clock, simulator, settings.data_dir / GROUND_TRUTH).run())
        return jobs

    return Embedded(create_app(services, background), monitor, scheduler, created, lock)


@dataclass
class KafkaApi:
    app: FastAPI
    monitor: object
    new_tokens: dict[str, str]
    data_dir_lock: int

    def close(self) -> None:
        self.monitor.store.close()
        os.close(self.data_dir_lock)


def build_kafka_api(settings: ServerSettings) -> KafkaApi:
    """The API and console over a Kafka deployment: ingest produces to the events topic, the read
    model follows the output topics into data_dir (a cache: deleting it rebuilds it from Kafka)."""
    from permitwatch.models.settings import load_settings
    from permitwatch.streams.kafka.gateway import KafkaMonitor

    lock = hold_data_dir(settings.data_dir)
    store = Store(settings.database, settings.synchronous)
    metrics = Metrics("kafka-api")
    monitor = KafkaMonitor(settings.bootstrap, settings.topology, store, load_settings(settings.rule_settings),
                           settings.make_clock(), metrics, settings.producer_options)
    auth, created = ensure_tokens(settings)
    services = Services(runtime=monitor, auth=auth, max_body_bytes=settings.max_body_bytes,
                        exemption_wait_seconds=settings.exemption_wait_seconds)
    return KafkaApi(create_app(services, monitor.jobs), monitor, created, lock)


def _next_demo_run(store: Store) -> str:
    """Each start of the demo gets its own id namespace: a restart must not reuse case or event
    ids (events would be ignored as duplicates, cases merged)."""
    run = int(store.meta("demo_runs") or 0) + 1
    with store.write_lock, store.transaction() as tx:
        Store.set_meta(tx, "demo_runs", str(run))
    return "" if run == 1 else f"R{run}-"
