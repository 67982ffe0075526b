"""Prometheus metrics of a runtime (names follow the conventions: `permitwatch_…_total`,
seconds, bytes). Each runtime has its own registry, served on `/metrics`.

Every labelled series whose labels are known in advance is exposed at 0 from the start: a series
Prometheus first sees at 3 counts as 3 from nothing, so `increase()` and `rate()` leave those 3
out, and a series that is absent makes `sum()` empty instead of 0, so an alert on "none" never
fires."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from permitwatch.alerts.rules import RULES
from permitwatch.models.alerts import Alert
from permitwatch.models.catalog import CatalogEntry
from permitwatch.models.deadletter import CATEGORIES
from permitwatch.models.events import EVENT_KINDS
from permitwatch.models.referrals import Referral
from permitwatch.models.settings import Signal
from permitwatch.streams.clocks import Clock

LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 86400)
ENGINE_BUCKETS = (0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.005, 0.01)
# Without this every counter and histogram series has a `_created` twin holding its creation
# time, which nothing here reads: half of what /metrics served and Prometheus stored.
disable_created_metrics()

UNKNOWN_DEPARTMENT = "unknown"
"""The department counted for an event that names none, of a case that names none."""


class Metrics:
    def __init__(self, runtime: str) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.info = Gauge("permitwatch_info", "Runtime of this process", ["runtime"], registry=r)
        self.info.labels(runtime).set(1)
        self.events = Counter("permitwatch_events", "Events accepted, by type", ["type"], registry=r)
        self.department_events = Counter("permitwatch_department_events",
                                         "Events accepted, by department (the event's, else its case's)",
                                         ["department"], registry=r)
        self._accepted: dict[tuple[str, str | None], tuple[Any, Any]] = {}
        self.events_sent = Counter("permitwatch_events_sent",
                                   "Events the Kafka API produced to the events topic, by type (the workers count "
                                   "them in permitwatch_events_total as they judge them)", ["type"], registry=r)
        self.unknown_items = Counter("permitwatch_unknown_item_events",
                                     "Events whose item the catalog does not know (judged with the law's defaults)",
                                     registry=r)
        self.duplicates = Counter("permitwatch_duplicate_events", "Events received again (same id), ignored",
                                  registry=r)
        self.redelivered = Counter("permitwatch_redelivered_records",
                                   "Kafka records consumed again after a restart and skipped (already applied)",
                                   registry=r)
        self.gap_refills = Counter("permitwatch_kafka_gap_refills",
                                   "Times records the Kafka consumer skipped were read from the broker and applied",
                                   registry=r)
        self.dead_letters = Counter("permitwatch_dead_letters", "Inputs refused, by reason", ["reason"], registry=r)
        self.alerts = Counter("permitwatch_alerts", "Alert records emitted, by rule, signal and status",
                              ["rule", "signal", "status"], registry=r)
        self.referral_versions = Counter("permitwatch_referral_versions", "Referral versions published, by status",
                                         ["status"], registry=r)
        self.open_cases = Gauge("permitwatch_open_cases", "Cases the engine holds", registry=r)
        self.cases_in_warning = Gauge("permitwatch_cases_in_warning_window",
                                      "Open cases with an active 预警/黄牌 (PW-002) and no decision", registry=r)
        self.processing_lag = Histogram("permitwatch_processing_lag_seconds",
                                        "From an event's time to the alert it caused being stored (real seconds)",
                                        buckets=LAG_BUCKETS, registry=r)
        self.deadline_lag = Histogram("permitwatch_deadline_firing_lag_seconds",
                                      "How late a deadline alert was stored: from its deadline, or from the moment "
                                      "the engine learnt what it rests on if that came later (real seconds)",
                                      buckets=LAG_BUCKETS, registry=r)
        self.engine_seconds = Histogram("permitwatch_engine_seconds", "Engine time per event",
                                        buckets=ENGINE_BUCKETS, registry=r)
        self.batch_seconds = Histogram("permitwatch_ingest_batch_seconds",
                                       "One ingest batch end to end (parse, journal, engine, commit)", registry=r)
        self.journal_events = Gauge("permitwatch_journal_events", "Events in the journal", registry=r)
        self.store_bytes = Gauge("permitwatch_store_bytes", "Size of the database and its write-ahead log",
                                 registry=r)
        self.checkpoint_bytes = Gauge("permitwatch_checkpoint_bytes", "Size of the last engine checkpoint",
                                      registry=r)
        self.checkpoint_failures = Counter("permitwatch_checkpoint_failures_total",
                                           "Engine checkpoints that could not be written (the journal has everything)",
                                           registry=r)
        self.clock_seconds = Gauge("permitwatch_engine_clock_seconds",
                                   "The engine clock, as a Unix time (on a simulated clock, the simulated time)",
                                   registry=r)
        self.clock_behind = Gauge("permitwatch_engine_clock_behind_seconds",
                                  "Real seconds since the runtime's clock showed the engine clock's time: how long "
                                  "deadlines have waited to be fired", registry=r)
        self.city_waiting = Gauge("permitwatch_city_waiting_inputs",
                                  "Inputs the city stage (PW-013, referrals) holds until its watermark passes them",
                                  registry=r)
        self.backlog = Gauge("permitwatch_backlog_records",
                             "Kafka: records of the partitions a worker judges after the last it judged (the "
                             "workers' ticks included; as of its consumer's last fetch), by stage (cases: the "
                             "events topic; city), read at the scrape; 0 elsewhere", ["stage"], registry=r)
        for kind in EVENT_KINDS:
            self.events.labels(kind)
            self.events_sent.labels(kind)
        self.department_events.labels(UNKNOWN_DEPARTMENT)
        for stage in ("cases", "city"):
            self.backlog.labels(stage)
        for category in CATEGORIES:
            self.dead_letters.labels(category)
        # Any signal, not only each rule's own: a deployment's settings may give a rule another one.
        for rule in RULES:
            for signal in get_args(Signal):
                for status in get_args(Alert.model_fields["status"].annotation):
                    self.alerts.labels(rule.id, signal, status)
        for status in get_args(Referral.model_fields["status"].annotation):
            self.referral_versions.labels(status)

    def expect_departments(self, items: Iterable[CatalogEntry]) -> None:
        """Departments are open-ended (events name them); those the catalog names are known in
        advance and exposed at 0 too. Call when the catalog is read or replaced."""
        for item in items:
            self.department_events.labels(item.department)

    def event_accepted(self, kind: str, department: str | None, count: int = 1) -> None:
        # Called for every event: the children are kept, since `labels` costs as much as a rule.
        counters = self._accepted.get((kind, department))
        if counters is None:
            counters = self._accepted[kind, department] = (
                self.events.labels(kind), self.department_events.labels(department or UNKNOWN_DEPARTMENT))
        counters[0].inc(count)
        counters[1].inc(count)

    def published(self, alerts: Iterable[Alert], referrals: Iterable[Referral], stored_at: datetime,
                  found_at: dict[str, datetime], clock: Clock) -> None:
        """Counts the alert records and referral versions a runtime stored (or produced) at
        `stored_at` and observes how late each alert was, in real seconds. A deadline alert is late from its deadline or, if the engine learnt what it rests
        on only afterwards, from then (`found_at`, per alert id: `Emitted.found_at`); any other
        from its event's time."""
        for alert in alerts:
            self.alerts.labels(alert.rule, alert.signal, alert.status).inc()
            due = alert.detected_at
            if alert.deadline is not None and alert.status == "active":
                found = found_at.get(alert.alert_id)
                if found is not None and found > due:
                    due = found
                self.deadline_lag.observe(max(clock.real_seconds(stored_at - due), 0.0))
            else:
                self.processing_lag.observe(max(clock.real_seconds(stored_at - due), 0.0))
        for version in referrals:
            self.referral_versions.labels(version.status).inc()
