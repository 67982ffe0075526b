"""Running scenarios through the engine, and reading what came out."""

from __future__ import annotations

from collections.abc import Iterable

from permitwatch.alerts.clock import WorkingCalendar
from permitwatch.alerts.engine import Emitted, Engine
from permitwatch.models.alerts import Alert
from permitwatch.models.catalog import Catalog
from permitwatch.models.events import CloudEvent
from permitwatch.models.settings import RuleSettings
from tests.factory import catalog as default_catalog
from tests.factory import moment

BUILTIN_CALENDAR = WorkingCalendar()


def engine_for(catalog: Catalog | None = None, settings: RuleSettings | None = None,
               calendar: WorkingCalendar | None = None, always_full: bool = False) -> Engine:
    return Engine((catalog or default_catalog()).by_code(), calendar or BUILTIN_CALENDAR, settings or RuleSettings(),
                  always_full)


def run(events: Iterable[CloudEvent], until: str | None = None, engine: Engine | None = None, **kwargs) -> list[Alert]:
    """Process the events in the given order, then advance the clock to `until`; all records out."""
    engine = engine or engine_for(**kwargs)
    out: list[Alert] = []
    for event in events:
        out += engine.process(event).alerts
    if until:
        out += engine.advance(moment(until)).alerts
    out += engine.finish().alerts
    return out


def final(alerts: Iterable[Alert]) -> dict[str, Alert]:
    """The last record of each alert id."""
    latest: dict[str, Alert] = {}
    for alert in alerts:
        latest[alert.alert_id] = alert
    return latest


def active(alerts: Iterable[Alert], rule: str | None = None) -> list[Alert]:
    return [a for a in final(alerts).values() if a.status == "active" and (rule is None or a.rule == rule)]


def rules(alerts: Iterable[Alert]) -> set[str]:
    return {a.rule for a in active(alerts)}


def run_all(events: Iterable[CloudEvent], until: str | None = None, engine: Engine | None = None,
            **kwargs) -> Emitted:
    """Like `run`, keeping referral versions too."""
    engine = engine or engine_for(**kwargs)
    out = Emitted()
    for event in events:
        out.extend(engine.process(event))
    if until:
        out.extend(engine.advance(moment(until)))
    out.extend(engine.finish())
    return out
