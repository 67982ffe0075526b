"""Commands of the embedded monitor and its clients: run, send, token, demo, scorecard."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from permitwatch.api.cli.common import (
    UsageError,
    add_clock_arguments,
    add_format_argument,
    add_reference_arguments,
    add_server_arguments,
    announce,
    command,
    event_records,
    instant,
    log_to_stderr,
    print_refusals,
    require_files,
    serve,
    settings_from,
    start_instant,
)


def _configure_run(parser: argparse.ArgumentParser) -> None:
    add_server_arguments(parser, "database, checkpoint and token files")
    add_reference_arguments(parser)
    parser.add_argument("--demo", action="store_true", default=None,
                        help="also play a simulated city on a compressed clock")
    parser.add_argument("--demo-seed", type=int, help="demo random seed (default 1)")
    add_clock_arguments(parser, "(rehearsals; the demo starts at 2026-03-02T08:30+08:00) ")


@command("run", "run the monitor: ingest, engine, API, console and /metrics in one process", _configure_run)
def run_run(args: argparse.Namespace) -> int:
    from permitwatch.api.compose import embedded

    log_to_stderr()
    settings = settings_from(args)
    runtime = embedded(settings)
    announce(settings, runtime.new_tokens)
    if settings.demo:
        start, speed = settings.simulated_clock
        print(f"Demo: a simulated city at {speed:g}x from {start:%Y-%m-%d %H:%M}; "
              f"ground truth in {settings.data.demo_ground_truth}; "
              f"`permitwatch demo check --data-dir {settings.data_dir}` scores it")
    return serve(settings, runtime)


def _configure_send(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="JSON-lines event file (.gz too)")
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the monitor's base URL")
    parser.add_argument("--token", help="an ingest token (or PERMITWATCH_TOKEN)")
    parser.add_argument("--batch", type=int, default=1000, help="events per request")
    parser.add_argument("--resume", action="store_true", help="continue a send that was cut short, after the "
                        "last line the monitor acknowledged (kept in FILE.sent)")
    parser.add_argument("--history-ok", action="store_true", help="send events far older than the monitor's "
                        "clock anyway (they are judged at its clock; `permitwatch import` replays history)")


@command("send", "post a JSON-lines event file to a running monitor", _configure_send)
def run_send(args: argparse.Namespace) -> int:
    from permitwatch.api.client import send_file

    token = args.token or os.environ.get("PERMITWATCH_TOKEN")
    if not token:
        raise UsageError("give an ingest token with --token or PERMITWATCH_TOKEN")
    require_files([args.file])
    if args.batch < 1:
        raise UsageError("--batch must be at least 1")
    report = send_file(args.file, args.url.rstrip("/"), token, args.batch, progress=sys.stderr,
                       resume=args.resume, history_ok=args.history_ok)
    print(f"sent {report.lines} lines: {report.summary()}")
    print_refusals([f"line {rejection.index}: {rejection.reason}" for rejection in report.rejected])
    for warning in report.warnings:
        print(f"  warning: {warning}")
    return 1 if report.rejected else 0


def _configure_token(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", required=True, help="who will hold the token")
    parser.add_argument("--role", action="append", choices=["operator", "ingest", "admin"], required=True)
    parser.add_argument("--tokens-file", type=Path, help="add the entry to this token file (made when missing), "
                        "e.g. for the Kubernetes Secret")


@command("token", "create a token: prints it once, and the entry (hash only) for the token file",
         _configure_token)
def run_token(args: argparse.Namespace) -> int:
    from permitwatch.api.auth import add_token, new_token

    token, entry = new_token(args.name, args.role)
    print(f"token: {token}")
    if args.tokens_file:
        add_token(args.tokens_file, entry)
        print(f"added to {args.tokens_file} (hash only; a running monitor or API takes it from its next request)")
    else:
        print(f"entry: {entry.model_dump_json()}")
    return 0


def _configure_demo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["check"], help="check: precision and recall per rule")
    parser.add_argument("--data-dir", type=Path)


@command("demo", "score the demo's alerts against its ground truth", _configure_demo)
def run_demo(args: argparse.Namespace) -> int:
    from permitwatch.streams.simulation.demo import check, render
    from permitwatch.streams.store import Store

    data = settings_from(args).data
    if not data.demo_ground_truth.exists() or not data.database.exists():
        raise UsageError(f"no demo in {data.root}: run `permitwatch run --demo --data-dir {data.root}` first")
    clock, scores = check(Store(data.database), data.demo_ground_truth)
    print(render(clock, scores))
    return 0


def _configure_scorecard(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=Path, action="append", required=True, metavar="FILE",
                        help="event log(s); repeatable")
    add_format_argument(parser)
    parser.add_argument("--alerts", type=Path, required=True, metavar="FILE", help="alerts from replay or run")
    parser.add_argument("--from", dest="start", type=start_instant, required=True, help="period start (date or time)")
    parser.add_argument("--to", dest="end", type=instant, required=True, help="period end, inclusive of a date")
    add_reference_arguments(parser)
    parser.add_argument("--csv", type=Path, metavar="FILE", help="also write the table as CSV")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the rows as JSON")


@command("scorecard", "per-department and per-item performance over a period (绩效评估)", _configure_scorecard)
def run_scorecard(args: argparse.Namespace) -> int:
    from permitwatch.alerts.clock import LegalClock
    from permitwatch.alerts.rules.base import Context
    from permitwatch.alerts.scorecard import case_states, scorecards
    from permitwatch.api.compose import load_reference
    from permitwatch.api.scorecard_output import render_table, write_csv, write_json
    from permitwatch.models.alerts import Alert
    from permitwatch.models.events import InvalidEvent, parse_event_with_digest
    from permitwatch.streams.inputs.readers import read_jsonl

    if args.end <= args.start:
        raise UsageError("--to must be after --from")
    require_files([*args.events, args.alerts])
    catalog, calendar, settings = load_reference(settings_from(args, environment=False))
    events, skipped = [], 0
    for record in event_records(args, args.events):
        try:
            events.append(parse_event_with_digest(record.raw)[0])  # the events the runtimes take
        except InvalidEvent:
            skipped += 1
    if skipped and not events:
        hint = "" if args.format != "jsonl" else " (a realdata CSV needs --format realdata-csv)"
        raise UsageError(f"no valid event in {', '.join(map(str, args.events))}: {skipped} lines skipped{hint}")
    alerts = [Alert.model_validate_json(record.raw) for record in read_jsonl([args.alerts])]
    ctx = Context(LegalClock(calendar, settings.end_of_day_time), settings, catalog.by_code())
    rows = scorecards(case_states(events), alerts, args.start, args.end, ctx)
    print(render_table(rows))
    if skipped:
        print(f"({skipped} invalid event lines skipped)")
    if args.csv:
        write_csv(rows, args.csv)
    if args.json:
        write_json(rows, args.json)
    return 0
