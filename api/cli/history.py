"""Commands over event logs: replay one deterministically, or import history into a monitor's
database or a Kafka deployment."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime
from pathlib import Path

from permitwatch.api.cli.common import (
    UsageError,
    add_format_argument,
    add_kafka_arguments,
    add_reference_arguments,
    command,
    event_records,
    instant,
    print_refusals,
    require_files,
    settings_from,
)


def _configure_replay(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", type=Path, nargs="+", metavar="EVENTS", help="event files, processed in order")
    add_reference_arguments(parser)
    parser.add_argument("--until", type=instant, help="advance the clock to this time at the end")
    parser.add_argument("--alerts-out", default="-", metavar="FILE", help="alerts as JSON lines (default stdout)")
    parser.add_argument("--referrals-out", metavar="FILE", help="every referral version as JSON lines")
    parser.add_argument("--dead-letter", type=Path, metavar="FILE",
                        help="invalid input with reasons (default: next to the alerts, *.dead-letter.jsonl)")
    add_format_argument(parser)


def _dead_letter_path(alerts_out: str) -> Path:
    if alerts_out == "-":
        return Path("dead-letter.jsonl")
    path = Path(alerts_out)
    return path.with_name(path.name.removesuffix(".jsonl") + ".dead-letter.jsonl")


@command("replay", "process event files deterministically and write the alerts", _configure_replay)
def run_replay(args: argparse.Namespace) -> int:
    from contextlib import ExitStack

    from permitwatch.api.compose import engine
    from permitwatch.streams.inputs.readers import RealdataMapping
    from permitwatch.streams.replay import replay

    require_files(args.files)
    judge = engine(settings_from(args, environment=False))
    mapping = RealdataMapping()
    records = event_records(args, args.files, mapping)
    dead_letter_path = args.dead_letter or _dead_letter_path(args.alerts_out)
    with ExitStack() as stack:
        alerts_out = sys.stdout.buffer if args.alerts_out == "-" else stack.enter_context(open(args.alerts_out, "wb"))
        dead_letters = stack.enter_context(open(dead_letter_path, "wb"))
        referrals_out = stack.enter_context(open(args.referrals_out, "wb")) if args.referrals_out else None
        summary = replay(records, judge, alerts_out, dead_letters, args.until, referrals_out)
    report = sys.stderr if args.alerts_out == "-" else sys.stdout
    print(summary.render(judge), file=report)
    if args.format == "realdata-csv":
        print(f"realdata rows       {mapping.rows}  mapped {sum(mapping.mapped.values())}  "
              f"skipped (no canonical mapping) {sum(mapping.skipped.values())}  unreadable {mapping.refused}",
              file=report)
    print(f"dead letters in     {dead_letter_path}", file=report)
    return 0


def _configure_import(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", type=Path, nargs="+", metavar="FILE")
    parser.add_argument("--format", choices=["realdata-csv", "feed", "jsonl"], required=True,
                        help="realdata-csv: the flat permit-log CSV (docs/realdata.md); feed: government records "
                        "through --mapping; jsonl: CloudEvents")
    parser.add_argument("--mapping", type=Path, help="mapping file for --format feed "
                        "(deploy/mappings/gbt39046.yaml for GB/T 39046 records)")
    parser.add_argument("--data-dir", type=Path, help="the monitor's data directory (default ./permitwatch-data)")
    add_reference_arguments(parser)
    parser.add_argument("--until", type=instant, help="advance the clock to this time at the end")
    add_kafka_arguments(parser)


@command("import", "load history into a monitor's database (for an audit with `permitwatch run`), or with --kafka "
         "into a Kafka deployment before its workers start", _configure_import)
def run_import(args: argparse.Namespace) -> int:
    require_files(args.files)
    if args.format == "feed" and args.mapping is None:
        raise UsageError("--format feed needs --mapping FILE (e.g. deploy/mappings/gbt39046.yaml)")
    settings = settings_from(args)
    if settings.kafka:
        return _import_to_kafka(args, settings)
    return _import_to_database(args, settings)


def _history(args: argparse.Namespace) -> tuple[list, list]:
    """The records of the history files with their event times, and the feed records no event came
    from (with the reason)."""
    from permitwatch.models.files import load_structured
    from permitwatch.models.mapping import FeedMapping
    from permitwatch.streams.inputs.feeds import MappedCounts, map_records
    from permitwatch.streams.inputs.readers import RealdataMapping, read_jsonl, read_realdata_csv, timed

    unmapped: list = []
    if args.format == "realdata-csv":
        realdata = RealdataMapping()
        events = timed(read_realdata_csv(args.files, realdata))
        print(f"realdata rows {realdata.rows}: mapped {sum(realdata.mapped.values())}, "
              f"skipped (no canonical mapping) {sum(realdata.skipped.values())}, unreadable {realdata.refused}")
    elif args.format == "feed":
        counts = MappedCounts()
        events = list(map_records(read_jsonl(args.files), load_structured(args.mapping, FeedMapping), counts,
                                  unmapped))
        print(f"feed records {counts.records}: {counts.events} events, {counts.unmapped} unmapped")
    else:
        events = timed(read_jsonl(args.files))
    return events, unmapped


def _print_import(summary, unmapped: list, duplicates: str) -> None:
    print(f"events {summary.events}: accepted {summary.accepted}, {duplicates}, rejected {len(summary.rejected)}")
    print_refusals([f"{record.origin}: {reason}" for record, reason in unmapped]
                   + [f"{r.origin}: {r.reason}" for r in summary.rejected])


def _import_to_database(args: argparse.Namespace, settings) -> int:
    from permitwatch.api.compose import history_monitor
    from permitwatch.streams.embedded.history import import_events

    events, unmapped = _history(args)
    start = min((t for t, _ in events if t is not None), default=datetime.now().astimezone())
    monitor, clock, lock = history_monitor(settings, start)
    try:
        for record, reason in unmapped:
            monitor.dead_letter(record.origin, "unmapped", reason, record.raw)
        summary = import_events(monitor, clock, events, args.until)
        monitor.try_checkpoint()
        _print_import(summary, unmapped, f"duplicates {summary.duplicates}")
        print(f"period {summary.first} → {summary.last}; alerts stored {monitor.store.count('alerts')}; "
              f"serve with `permitwatch run --data-dir {settings.data_dir}`")
    finally:
        monitor.store.close()
        os.close(lock)
    return 0


def _import_to_kafka(args: argparse.Namespace, settings) -> int:
    import asyncio

    from permitwatch.streams.kafka.history import import_history

    if args.catalog or args.calendars or args.rule_settings:
        raise UsageError("with --kafka the workers judge with the reference data on Kafka: publish the catalog and "
                         "calendars with `permitwatch reference` (and give the workers --settings), then import "
                         "without --catalog, --calendar and --settings")
    events, unmapped = _history(args)
    summary = asyncio.run(import_history(settings.bootstrap, settings.topology, events, unmapped, args.until,
                                         producer_options=settings.producer_options))
    _print_import(summary, unmapped, "duplicates counted by the workers as they drop them")
    print(f"period {summary.first} → {summary.last}, written to {settings.topology.events} with the partitions' "
          f"clocks; start the workers (`permitwatch worker --kafka {settings.bootstrap} --topic-prefix "
          f"{settings.topology.prefix} --group {settings.group}`): they judge the history, then carry on live")
    return 0
