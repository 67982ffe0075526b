"""The `permitwatch` command line. Each sub-command is a thin adapter over the core."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

import orjson
from pydantic import ValidationError

from permitwatch.models.errors import InvalidInput, PermitwatchError
from permitwatch.models.files import describe_validation_error

COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int], str]] = {}


def command(name: str, help_text: str, configure: Callable[[argparse.ArgumentParser], None]):
    """Register a sub-command: `configure` adds its arguments, the decorated function runs it."""

    def bind(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = (configure, run, help_text)
        return run

    return bind


class UsageError(InvalidInput):
    """A mistake in how the command was called; printed without a traceback."""


def _day(text: str) -> date:
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        from permitwatch.alerts.clock import local_date

        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            raise ValueError("a time needs a timezone, e.g. 2026-09-21T09:00+08:00")
        return local_date(moment)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD): {exc}") from None


# ---------------------------------------------------------------- deadline


def _configure_deadline(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--start", type=_day, required=True, help="the trigger day (not counted), YYYY-MM-DD")
    unit = parser.add_mutually_exclusive_group(required=True)
    unit.add_argument("--working-days", type=int, metavar="N", help="period in working days (工作日)")
    unit.add_argument("--calendar-days", type=int, metavar="N", help="period in calendar days")
    parser.add_argument("--calendar", action="append", default=[], metavar="FILE",
                        help="calendar override file (JSON/YAML); repeatable")
    parser.add_argument("--end-of-day", default="24:00", metavar="HH:MM", help="when a legal day ends")
    parser.add_argument("--explain", action="store_true", help="list every day counted and skipped")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


@command("deadline", "compute a legal deadline by hand", _configure_deadline)
def run_deadline(args: argparse.Namespace) -> int:
    from permitwatch.alerts.clock import LegalClock, WorkingCalendar
    from permitwatch.models.calendar import load_calendar
    from permitwatch.models.common import Duration
    from permitwatch.models.settings import RuleSettings

    value = args.working_days if args.working_days is not None else args.calendar_days
    if value < 0:
        raise UsageError("the period must not be negative")
    unit = "working_days" if args.working_days is not None else "calendar_days"
    settings = RuleSettings(end_of_day=args.end_of_day)
    calendar = WorkingCalendar([load_calendar(path) for path in args.calendar])
    clock = LegalClock(calendar, settings.end_of_day_time)
    deadline = clock.deadline("deadline", args.start, Duration(value=value, unit=unit), "start")
    if args.json:
        sys.stdout.write(orjson.dumps(deadline.info().model_dump(mode="json")).decode() + "\n")
        return 0
    print(f"last legal day : {deadline.last_day} ({deadline.last_day.strftime('%A')})")
    print(f"ends at        : {deadline.instant.isoformat()} (end of day {args.end_of_day} Asia/Shanghai)")
    print(f"calendar       : {deadline.calendar_version}")
    print(f"provisional    : {'YES: a year on the way has no published calendar; weekends only' if deadline.provisional else 'no'}")
    if args.explain:
        day, counted = args.start, 0
        while day < deadline.last_day:
            day += timedelta(days=1)
            kind = calendar.day_kind(day)
            if unit == "calendar_days" or kind in ("working", "make-up workday"):
                counted += 1
                mark = f"#{counted}"
            else:
                mark = "not counted"
            print(f"  {day} {day.strftime('%a')}  {kind:<16} {mark}")
    return 0


# ---------------------------------------------------------------- replay


def _instant(text: str) -> datetime:
    """An aware ISO time; a bare date means the end of that day (24:00 Asia/Shanghai)."""
    from permitwatch.alerts.clock import SHANGHAI

    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text) + timedelta(days=1), datetime.min.time(), SHANGHAI)
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time: {exc}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no timezone; write e.g. {text}+08:00")
    return moment


def _add_reference_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--catalog", type=Path, help="item catalog file (JSON/YAML)")
    parser.add_argument("--calendar", type=Path, action="append", default=[], metavar="FILE",
                        help="calendar override file; repeatable")
    parser.add_argument("--settings", type=Path, help="rule settings file (JSON/YAML); defaults documented in docs/rules.md")


def _configure_replay(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", type=Path, nargs="+", metavar="EVENTS", help="event files, processed in order")
    _add_reference_arguments(parser)
    parser.add_argument("--until", type=_instant, help="advance the clock to this time at the end")
    parser.add_argument("--alerts-out", default="-", metavar="FILE", help="alerts as JSON lines (default stdout)")
    parser.add_argument("--referrals-out", metavar="FILE", help="every referral version as JSON lines")
    parser.add_argument("--dead-letter", type=Path, metavar="FILE",
                        help="invalid input with reasons (default: next to the alerts, *.dead-letter.jsonl)")
    _add_format_argument(parser)


def _add_format_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=["jsonl", "realdata-csv"], default="jsonl",
                        help="jsonl: CloudEvents, one per line; realdata-csv: the flat permit-log CSV")


def _event_records(args: argparse.Namespace, files: list[Path], mapping=None):
    """The records of event files in the format asked for."""
    from permitwatch.streams.readers import RealdataMapping, read_jsonl, read_realdata_csv

    if args.format == "jsonl":
        return read_jsonl(files)
    return read_realdata_csv(files, mapping if mapping is not None else RealdataMapping())


def _dead_letter_path(alerts_out: str) -> Path:
    if alerts_out == "-":
        return Path("dead-letter.jsonl")
    path = Path(alerts_out)
    return path.with_name(path.name.removesuffix(".jsonl") + ".dead-letter.jsonl")


@command("replay", "process event files deterministically and write the alerts", _configure_replay)
def run_replay(args: argparse.Namespace) -> int:
    from contextlib import ExitStack

    from permitwatch.streams.readers import RealdataMapping
    from permitwatch.streams.replay import replay
    from permitwatch.streams.setup import build_engine

    missing = [str(p) for p in args.files if not p.is_file()]
    if missing:
        raise UsageError(f"no such file: {', '.join(missing)}")
    engine = build_engine(args.catalog, args.calendar, args.settings)
    mapping = RealdataMapping()
    records = _event_records(args, args.files, mapping)
    dead_letter_path = args.dead_letter or _dead_letter_path(args.alerts_out)
    with ExitStack() as stack:
        alerts_out = sys.stdout.buffer if args.alerts_out == "-" else stack.enter_context(open(args.alerts_out, "wb"))
        dead_letters = stack.enter_context(open(dead_letter_path, "wb"))
        referrals_out = stack.enter_context(open(args.referrals_out, "wb")) if args.referrals_out else None
        summary = replay(records, engine, alerts_out, dead_letters, args.until, referrals_out)
    report = sys.stderr if args.alerts_out == "-" else sys.stdout
    print(summary.render(engine), file=report)
    if args.format == "realdata-csv":
        print(f"realdata rows       {mapping.rows}  mapped {sum(mapping.mapped.values())}  "
              f"skipped (no canonical mapping) {sum(mapping.skipped.values())}  unreadable {mapping.refused}",
              file=report)
    print(f"dead letters in     {dead_letter_path}", file=report)
    return 0


# ---------------------------------------------------------------- run


def _configure_run(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, help="database, checkpoint and token files (default ./permitwatch-data)")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 8080)")
    _add_reference_arguments(parser)
    parser.add_argument("--tokens-file", type=Path, help="token file (hashes; default data-dir/tokens.json)")
    parser.add_argument("--demo", action="store_true", help="also play a simulated city on a compressed clock")
    parser.add_argument("--demo-seed", type=int, help="demo random seed (default 1)")
    parser.add_argument("--clock-start", type=_instant, help="run on a simulated clock from this time "
                        "(rehearsals; the demo starts at 2026-03-02T08:30+08:00)")
    parser.add_argument("--clock-speed", type=float, help="simulated clock speed (the demo: 1440, a day a minute)")


def _announce(settings, new_tokens: dict[str, str]) -> None:
    base = f"http://{settings.host}:{settings.port}"
    print(f"permitwatch listening on {base}  (database {settings.database})")
    if new_tokens:
        print(f"New tokens (shown once; only their hashes are kept in {settings.token_path}):")
        for name, token in new_tokens.items():
            print(f"  {name:<9} {token}")
        print(f"Console: {base}/console/#token={new_tokens['operator']}")
    else:
        print(f"Console: {base}/console/ (log in with an operator token: the one shown at the first start; "
              f"{settings.token_path} keeps only hashes. `permitwatch token --name NAME --role operator` makes a "
              "new one and prints the entry to add to that file)")


class Terminated(Exception):
    """SIGTERM (`docker stop`, Kubernetes) arrived: shut down as for ^C."""


def _terminated(signum, frame) -> None:
    raise Terminated


def _serve(settings, runtime) -> int:
    """Serve `runtime.app` until stopped (SIGINT or SIGTERM, the same way), then close the runtime
    (the shutdown checkpoint)."""
    import signal

    import uvicorn

    # uvicorn shuts down gracefully on either signal, then restores the handler it found and raises
    # the signal again: with the default SIGTERM handler the process died there, before the
    # checkpoint below (SIGINT raised KeyboardInterrupt and came through).
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        uvicorn.Server(uvicorn.Config(runtime.app, host=settings.host, port=settings.port, log_level="warning",
                                      timeout_graceful_shutdown=5)).run()
    except Terminated:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        runtime.close()
    return 0


def server_settings(args: argparse.Namespace):
    """Flags override PERMITWATCH_* environment variables, which override the defaults."""
    from permitwatch.api.settings import ServerSettings

    given = {
        "data_dir": args.data_dir, "host": getattr(args, "host", None), "port": getattr(args, "port", None),
        "catalog": getattr(args, "catalog", None), "rule_settings": getattr(args, "settings", None),
        "tokens_file": getattr(args, "tokens_file", None), "demo_seed": getattr(args, "demo_seed", None),
        "clock_start": getattr(args, "clock_start", None), "clock_speed": getattr(args, "clock_speed", None),
        "kafka": getattr(args, "kafka", None), "topic_prefix": getattr(args, "topic_prefix", None),
        "partitions": getattr(args, "partitions", None),
    }
    if getattr(args, "calendar", None):
        given["calendars"] = args.calendar
    if getattr(args, "demo", False):
        given["demo"] = True
    return ServerSettings(**{k: v for k, v in given.items() if v is not None})


@command("run", "run the monitor: ingest, engine, API, console and /metrics in one process", _configure_run)
def run_run(args: argparse.Namespace) -> int:
    import logging

    from permitwatch.api.server import build_embedded

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = server_settings(args)
    embedded = build_embedded(settings)
    _announce(settings, embedded.new_tokens)
    if settings.demo:
        start, speed = settings.simulated_clock
        print(f"Demo: a simulated city at {speed:g}x from {start:%Y-%m-%d %H:%M}; "
              f"ground truth in {settings.data_dir / 'demo-ground-truth.jsonl'}; "
              f"`permitwatch demo check --data-dir {settings.data_dir}` scores it")
    return _serve(settings, embedded)


# ---------------------------------------------------------------- Kafka


def _add_kafka_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kafka", metavar="HOST:PORT", help="Kafka bootstrap servers (or PERMITWATCH_KAFKA)")
    parser.add_argument("--topic-prefix", help="topic names PREFIX.events, PREFIX.alerts, … (default permitwatch)")
    parser.add_argument("--partitions", type=int, help="partitions of the events topic (default 12; fixed once "
                        "the topics exist)")


def _given(args: argparse.Namespace, **names: str) -> dict:
    """Flags that were given, by settings field (flags override PERMITWATCH_* variables)."""
    return {field: getattr(args, flag) for field, flag in names.items() if getattr(args, flag, None) is not None}


def _configure_worker(parser: argparse.ArgumentParser) -> None:
    _add_kafka_arguments(parser)
    parser.add_argument("--group", help="consumer group and faust app id (default permitwatch-worker)")
    parser.add_argument("--store", choices=["memory", "rocksdb"], help="where tables live (default memory)")
    parser.add_argument("--state-dir", type=Path, help="faust data directory (default ./permitwatch-worker)")
    parser.add_argument("--settings", type=Path, help="rule settings file; every worker must have the same")
    parser.add_argument("--metrics-port", type=int, help="Prometheus /metrics port (default 9464, 0: none)")
    parser.add_argument("--clock-start", type=_instant, help="run on a simulated clock from this time")
    parser.add_argument("--clock-speed", type=float, help="simulated clock speed")


def worker_settings(args: argparse.Namespace):
    from permitwatch.streams.kafka.worker import WorkerSettings

    return WorkerSettings(**_given(args, kafka="kafka", topic_prefix="topic_prefix", partitions="partitions",
                                   group="group", store="store", state_dir="state_dir", rule_settings="settings",
                                   metrics_port="metrics_port", clock_start="clock_start",
                                   clock_speed="clock_speed"))


@command("worker", "run a Kafka worker: the engine on the partitions this worker is assigned", _configure_worker)
def run_worker(args: argparse.Namespace) -> int:
    import logging

    from permitwatch.streams.kafka.worker import run_worker as run

    settings = worker_settings(args)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(settings)
    return 0


def _configure_reference(parser: argparse.ArgumentParser) -> None:
    _add_kafka_arguments(parser)
    parser.add_argument("--catalog", type=Path, help="item catalog file: replaces the whole catalog on Kafka")
    parser.add_argument("--calendar", type=Path, action="append", default=[], metavar="FILE",
                        help="calendar override file, added or replaced by version; repeatable")


@command("reference", "publish the item catalog and calendar overrides to Kafka (workers re-judge open cases)",
         _configure_reference)
def run_reference(args: argparse.Namespace) -> int:
    import asyncio

    from permitwatch.models.calendar import load_calendar
    from permitwatch.models.catalog import load_catalog
    from permitwatch.streams.kafka.reference import publish_reference
    from permitwatch.streams.kafka.topology import ensure_topics
    from permitwatch.streams.kafka.worker import WorkerSettings

    if args.catalog is None and not args.calendar:
        raise UsageError("give --catalog FILE and/or --calendar FILE")
    catalog = load_catalog(args.catalog) if args.catalog else None
    calendars = [load_calendar(path) for path in args.calendar]
    settings = WorkerSettings(**_given(args, kafka="kafka", topic_prefix="topic_prefix", partitions="partitions"))

    async def publish():
        await ensure_topics(settings.bootstrap, settings.topology)
        return await publish_reference(settings.bootstrap, settings.topology, catalog, calendars,
                                       settings.producer_options)

    published = asyncio.run(publish())
    print(f"catalog: {published.changed_items} entries written, {published.removed_items} removed; "
          f"calendars written: {published.calendars}"
          + ("" if published.control else " (nothing changed)"))
    return 0


def _configure_api(parser: argparse.ArgumentParser) -> None:
    _add_kafka_arguments(parser)
    parser.add_argument("--data-dir", type=Path, help="the read model (a cache of the topics) and token files "
                        "(default ./permitwatch-data)")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 8080)")
    parser.add_argument("--settings", type=Path, help="rule settings file (the workers' own)")
    parser.add_argument("--tokens-file", type=Path, help="token file (hashes; default data-dir/tokens.json)")
    parser.add_argument("--clock-start", type=_instant, help="the workers' simulated clock start, if any")
    parser.add_argument("--clock-speed", type=float, help="the workers' simulated clock speed")


@command("api", "serve the API, console and /metrics over a Kafka deployment (the workers judge)", _configure_api)
def run_api(args: argparse.Namespace) -> int:
    import logging

    from permitwatch.api.server import build_kafka_api

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = server_settings(args)
    if not settings.kafka:
        raise UsageError("give --kafka HOST:PORT (or PERMITWATCH_KAFKA); without Kafka, `permitwatch run` "
                         "serves the embedded monitor")
    served = build_kafka_api(settings)
    _announce(settings, served.new_tokens)
    print(f"Following {settings.topology.prefix}.* on {settings.bootstrap}")
    return _serve(settings, served)


# ---------------------------------------------------------------- import


def _configure_import(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", type=Path, nargs="+", metavar="FILE")
    parser.add_argument("--format", choices=["realdata-csv", "feed", "jsonl"], required=True,
                        help="realdata-csv: the flat permit-log CSV (docs/realdata.md); feed: government records through --mapping; "
                        "jsonl: CloudEvents")
    parser.add_argument("--mapping", type=Path, help="mapping file for --format feed "
                        "(deploy/mappings/gbt39046.yaml for GB/T 39046 records)")
    parser.add_argument("--data-dir", type=Path, default=Path("permitwatch-data"))
    _add_reference_arguments(parser)
    parser.add_argument("--until", type=_instant, help="advance the clock to this time at the end")
    _add_kafka_arguments(parser)


@command("import", "load history into a monitor's database (for an audit with `permitwatch run`), or with --kafka "
         "into a Kafka deployment before its workers start", _configure_import)
def run_import(args: argparse.Namespace) -> int:
    missing = [str(p) for p in args.files if not p.is_file()]
    if missing:
        raise UsageError(f"no such file: {', '.join(missing)}")
    if args.format == "feed" and args.mapping is None:
        raise UsageError("--format feed needs --mapping FILE (e.g. deploy/mappings/gbt39046.yaml)")
    if args.kafka or os.environ.get("PERMITWATCH_KAFKA"):
        return _import_to_kafka(args)
    return _import_to_database(args)


def _history(args: argparse.Namespace) -> tuple[list, list]:
    """The records of the history files with their event times, and the feed records no event came
    from (with the reason)."""
    from permitwatch.models.files import load_structured
    from permitwatch.models.mapping import FeedMapping
    from permitwatch.streams.feeds import MappedCounts, map_records
    from permitwatch.streams.importing import timed
    from permitwatch.streams.readers import RealdataMapping, read_jsonl, read_realdata_csv

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
    print(f"events {summary.events}: accepted {summary.accepted}, duplicates {duplicates}, "
          f"rejected {len(summary.rejected)}")
    refusals = [(record.origin, reason) for record, reason in unmapped] + [(r.origin, r.reason) for r in summary.rejected]
    for origin, reason in refusals[:20]:
        print(f"  {origin}: {reason}")


def _import_to_database(args: argparse.Namespace) -> int:
    from permitwatch.streams.clocks import ManualClock
    from permitwatch.streams.embedded.monitor import EmbeddedMonitor
    from permitwatch.streams.importing import HISTORY, hold_data_dir, import_events
    from permitwatch.streams.setup import load_reference
    from permitwatch.streams.store import Store

    lock = hold_data_dir(args.data_dir)
    try:
        catalog, calendar, settings = load_reference(args.catalog, args.calendar, args.settings)
        events, unmapped = _history(args)
        store = Store(args.data_dir / "permitwatch.sqlite")
        clock = ManualClock(min((t for t, _ in events if t is not None), default=datetime.now().astimezone()))
        monitor = EmbeddedMonitor(store, catalog, list(calendar.overrides), settings, clock, options=HISTORY,
                                  checkpoint_path=args.data_dir / "permitwatch.checkpoint")
        monitor.recover()
        for record, reason in unmapped:
            monitor.dead_letter(record.origin, "unmapped", reason, record.raw)
        summary = import_events(monitor, clock, events, args.until)
        monitor.try_checkpoint()
        _print_import(summary, unmapped, str(summary.duplicates))
        print(f"period {summary.first} → {summary.last}; alerts stored {store.count('alerts')}; "
              f"serve with `permitwatch run --data-dir {args.data_dir}`")
    finally:
        os.close(lock)
    return 0


def _import_to_kafka(args: argparse.Namespace) -> int:
    import asyncio

    from permitwatch.streams.kafka.history import import_history
    from permitwatch.streams.kafka.worker import WorkerSettings

    if args.catalog or args.calendar or args.settings:
        raise UsageError("with --kafka the workers judge with the reference data on Kafka: publish the catalog and "
                         "calendars with `permitwatch reference` (and give the workers --settings), then import "
                         "without --catalog, --calendar and --settings")
    settings = WorkerSettings(**_given(args, kafka="kafka", topic_prefix="topic_prefix", partitions="partitions"))
    events, unmapped = _history(args)
    summary = asyncio.run(import_history(settings.bootstrap, settings.topology, events, unmapped, args.until,
                                         producer_options=settings.producer_options))
    _print_import(summary, unmapped, "(the workers drop them)")
    print(f"period {summary.first} → {summary.last}, written to {settings.topology.events} with the partitions' "
          f"clocks; start the workers (`permitwatch worker --kafka {settings.bootstrap} --topic-prefix "
          f"{settings.topology.prefix}`): they judge the history, then carry on live")
    return 0


# ---------------------------------------------------------------- send


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
    from permitwatch.streams.sender import send_file

    token = args.token or os.environ.get("PERMITWATCH_TOKEN")
    if not token:
        raise UsageError("give an ingest token with --token or PERMITWATCH_TOKEN")
    if not args.file.is_file():
        raise UsageError(f"no such file: {args.file}")
    if args.batch < 1:
        raise UsageError("--batch must be at least 1")
    report = send_file(args.file, args.url.rstrip("/"), token, args.batch, progress=sys.stderr,
                       resume=args.resume, history_ok=args.history_ok)
    print(f"sent {report.lines} lines: {report.summary()}")
    for line, reason in [(r.index, r.reason) for r in report.rejected][:20]:
        print(f"  line {line}: {reason}")
    for warning in report.warnings:
        print(f"  warning: {warning}")
    return 1 if report.rejected else 0


# ---------------------------------------------------------------- simulate


def _configure_simulate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cases", type=int, default=1000, help="how many cases (default 1000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed: the same seed gives the same file")
    parser.add_argument("--departments", type=int, help="spread the items over this many departments (1: one "
                        "department holds every case); default: the sample catalog's")
    parser.add_argument("--violation-rate", type=float, default=0.2, help="share of cases with an injected "
                        "violation (default 0.2)")
    parser.add_argument("--out", default="-", help="events file (CloudEvents JSON lines; default stdout)")
    parser.add_argument("--ground-truth", type=Path, help="also write the alerts each case must raise (JSON lines)")


@command("simulate", "write a simulated city's events (CloudEvents JSON lines) to replay or send", _configure_simulate)
def run_simulate(args: argparse.Namespace) -> int:
    from permitwatch.streams.simulate import CitySimulator

    if args.cases < 1 or (args.departments is not None and args.departments < 1):
        raise UsageError("--cases and --departments must be at least 1")
    if not 0 <= args.violation_rate <= 1:
        raise UsageError("--violation-rate is a share between 0 and 1")
    simulator = CitySimulator(seed=args.seed, departments=args.departments, violation_rate=args.violation_rate)
    out = sys.stdout.buffer if args.out == "-" else open(args.out, "wb")  # noqa: SIM115 (stdout stays open)
    try:
        for _, raw in simulator.events(cases=args.cases):
            out.write(raw + b"\n")
    except BrokenPipeError:  # `| head`: the reader has what it wanted; nothing more to flush at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    if args.ground_truth is not None:
        args.ground_truth.write_bytes(b"".join(orjson.dumps(e.to_json()) + b"\n" for e in simulator.ground_truth))
    print(f"{args.cases} cases ({simulator.catalog.version} catalog: replay with `--catalog` "
          "deploy/reference/catalog.json)", file=sys.stderr)
    return 0


# ---------------------------------------------------------------- demo check


def _configure_demo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["check"], help="check: precision and recall per rule")
    parser.add_argument("--data-dir", type=Path, default=Path("permitwatch-data"))


@command("demo", "score the demo's alerts against its ground truth", _configure_demo)
def run_demo(args: argparse.Namespace) -> int:
    from permitwatch.streams.demo import GROUND_TRUTH, check, render
    from permitwatch.streams.store import Store

    truth = args.data_dir / GROUND_TRUTH
    database = args.data_dir / "permitwatch.sqlite"
    if not truth.exists() or not database.exists():
        raise UsageError(f"no demo in {args.data_dir}: run `permitwatch run --demo --data-dir {args.data_dir}` first")
    clock, scores = check(Store(database), truth)
    print(render(clock, scores))
    return 0


# ---------------------------------------------------------------- token


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
        print(f"added to {args.tokens_file} (hash only; an API reads it at start)")
    else:
        print(f"entry: {entry.model_dump_json()}")
    return 0


# ---------------------------------------------------------------- scorecard


def _start_instant(text: str) -> datetime:
    """An aware ISO time; a bare date means the start of that day (00:00 Asia/Shanghai)."""
    if len(text) == 10:
        return _instant(text) - timedelta(days=1)
    return _instant(text)


def _configure_scorecard(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=Path, action="append", required=True, metavar="FILE",
                        help="event log(s); repeatable")
    _add_format_argument(parser)
    parser.add_argument("--alerts", type=Path, required=True, metavar="FILE", help="alerts from replay or run")
    parser.add_argument("--from", dest="start", type=_start_instant, required=True, help="period start (date or time)")
    parser.add_argument("--to", dest="end", type=_instant, required=True, help="period end, inclusive of a date")
    _add_reference_arguments(parser)
    parser.add_argument("--csv", type=Path, metavar="FILE", help="also write the table as CSV")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the rows as JSON")


@command("scorecard", "per-department and per-item performance over a period (绩效评估)", _configure_scorecard)
def run_scorecard(args: argparse.Namespace) -> int:
    from permitwatch.alerts.clock import LegalClock
    from permitwatch.alerts.rules.base import Context
    from permitwatch.alerts.scorecard import case_states, scorecards
    from permitwatch.models.alerts import Alert
    from permitwatch.models.events import InvalidEvent, parse_event
    from permitwatch.streams.readers import read_jsonl
    from permitwatch.streams.scorecard_output import render_table, write_csv, write_json
    from permitwatch.streams.setup import load_reference

    if args.end <= args.start:
        raise UsageError("--to must be after --from")
    missing = [str(p) for p in (*args.events, args.alerts) if not p.is_file()]
    if missing:
        raise UsageError(f"no such file: {', '.join(missing)}")
    catalog, calendar, settings = load_reference(args.catalog, args.calendar, args.settings)
    events, skipped = [], 0
    for record in _event_records(args, args.events):
        try:
            events.append(parse_event(record.raw))
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


# ---------------------------------------------------------------- rules


def _configure_rules(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--markdown", action="store_true", help="print docs/rules.md")


@command("rules", "list the rules, their legal basis and parameters", _configure_rules)
def run_rules(args: argparse.Namespace) -> int:
    from permitwatch.alerts.catalog_doc import rules_markdown
    from permitwatch.alerts.rules import RULES

    if args.markdown:
        sys.stdout.write(rules_markdown())
        return 0
    for rule in RULES:
        print(f"{rule.id}  {rule.signal:<7}  {rule.title_zh} / {rule.title_en}")
        for basis in rule.basis:
            print(f"           {basis.cite}: {basis.text_zh}")
    return 0


# ---------------------------------------------------------------- schemas


def _configure_schemas(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("docs/schemas"), help="directory to write into")


@command("schemas", "write the JSON Schemas of the contract", _configure_schemas)
def run_schemas(args: argparse.Namespace) -> int:
    from permitwatch.models.schemas import write_schemas

    for path in write_schemas(args.out):
        print(path)
    return 0


def _configure_asyncapi(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("docs/asyncapi.yaml"), help="file to write")


@command("asyncapi", "write the AsyncAPI 3 document of the Kafka topics", _configure_asyncapi)
def run_asyncapi(args: argparse.Namespace) -> int:
    from permitwatch.streams.kafka.asyncapi import asyncapi_yaml

    args.out.write_text(asyncapi_yaml())
    print(args.out)
    return 0


# ---------------------------------------------------------------- entry point


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="permitwatch",
        description="Real-time e-supervision monitor for administrative licensing (行政审批电子监察).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (configure, run, help_text) in COMMANDS.items():
        child = sub.add_parser(name, help=help_text, description=help_text)
        configure(child)
        child.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 0
    try:
        return args.run(args)
    except PermitwatchError as exc:
        print(f"permitwatch {args.command}: {exc}", file=sys.stderr)
        return exc.exit_status
    except ValidationError as exc:
        print(f"permitwatch {args.command}: settings: {describe_validation_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
