"""Building the engine from reference files (catalog, calendars, rule settings)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from permitwatch.alerts.clock import WorkingCalendar
from permitwatch.alerts.engine import Engine
from permitwatch.models.calendar import load_calendar
from permitwatch.models.catalog import Catalog, load_catalog
from permitwatch.models.settings import RuleSettings, load_settings
from permitwatch.streams.retired import CompactCases


def load_reference(
    catalog: Path | None, calendars: Sequence[Path] = (), settings: Path | None = None
) -> tuple[Catalog, WorkingCalendar, RuleSettings]:
    return (
        load_catalog(catalog) if catalog else Catalog(),
        WorkingCalendar([load_calendar(path) for path in calendars]),
        load_settings(settings),
    )


def build_engine(catalog: Path | None, calendars: Sequence[Path] = (), settings: Path | None = None) -> Engine:
    items, calendar, rule_settings = load_reference(catalog, calendars, settings)
    return Engine(items.by_code(), calendar, rule_settings, retired=CompactCases())
