"""What the commands share: their registry, argument types, the flags every runtime reads (each
flag's destination is the name of its setting: `settings_from`), and serving an HTTP runtime."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

from permitwatch.models.errors import InvalidInput
from permitwatch.streams.settings import Settings

COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int], str]] = {}


def command(name: str, help_text: str, configure: Callable[[argparse.ArgumentParser], None]):
    """Register a sub-command: `configure` adds its arguments, the decorated function runs it."""

    def bind(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = (configure, run, help_text)
        return run

    return bind


class UsageError(InvalidInput):
    """A mistake in how the command was called; printed without a traceback."""


def settings_from(args: argparse.Namespace, environment: bool = True) -> Settings:
    """The flags given, over `PERMITWATCH_*` variables (unless `environment` is off: replay and
    scorecards depend on their arguments alone), over the defaults."""
    given = {name: value for name in Settings.model_fields
             if (value := getattr(args, name, None)) is not None and value != []}
    return Settings(**given) if environment else Settings.model_validate(given)


def require_files(paths: list[Path]) -> None:
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise UsageError(f"no such file: {', '.join(missing)}")


LISTED = 20
"""Refusals a command lists one by one; it counts the rest."""


def print_refusals(lines: list[str]) -> None:
    for line in lines[:LISTED]:
        print(f"  {line}")
    if len(lines) > LISTED:
        print(f"  … and {len(lines) - LISTED:,} more")


def log_to_stderr(level: str | int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # aiokafka notes every consumer's assignment at INFO: the Kafka API reads the reference topics
    # with a short-lived consumer every few seconds, one line each time.
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("aiokafka.consumer.subscription_state").setLevel(logging.WARNING)


# ----- argument types -----


def day(text: str) -> date:
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


def instant(text: str) -> datetime:
    """An aware ISO time; a bare date means the end of that day (24:00 Asia/Shanghai)."""
    from permitwatch.models.common import day_start

    try:
        if len(text) == 10:
            return day_start(date.fromisoformat(text) + timedelta(days=1))
        moment = datetime.fromisoformat(text)
    except (ValueError, OverflowError) as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time: {exc}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no timezone; write e.g. {text}+08:00")
    return moment


def start_instant(text: str) -> datetime:
    """An aware ISO time; a bare date means the start of that day (00:00 Asia/Shanghai)."""
    if len(text) == 10:
        return instant(text) - timedelta(days=1)
    return instant(text)


# ----- flags of settings -----


def add_reference_arguments(parser: argparse.ArgumentParser, catalog: bool = True) -> None:
    if catalog:
        parser.add_argument("--catalog", type=Path, help="item catalog file (JSON/YAML)")
        parser.add_argument("--calendar", dest="calendars", type=Path, action="append", metavar="FILE",
                            help="calendar override file; repeatable")
    parser.add_argument("--settings", dest="rule_settings", type=Path,
                        help="rule settings file (JSON/YAML); defaults documented in docs/rules.md")


def add_kafka_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kafka", metavar="HOST:PORT", help="Kafka bootstrap servers (or PERMITWATCH_KAFKA)")
    parser.add_argument("--topic-prefix", help="topic names PREFIX.events, PREFIX.alerts, … (default permitwatch)")
    parser.add_argument("--partitions", type=int, help="partitions of the events topic (default 12; fixed once "
                        "the topics exist)")


def add_clock_arguments(parser: argparse.ArgumentParser, whose: str = "") -> None:
    parser.add_argument("--clock-start", type=instant, help=f"{whose}run on a simulated clock from this time")
    parser.add_argument("--clock-speed", type=float, help="simulated clock speed (1440: a day a minute)")


def add_server_arguments(parser: argparse.ArgumentParser, data_dir: str) -> None:
    parser.add_argument("--data-dir", type=Path, help=f"{data_dir} (default ./permitwatch-data)")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 8080)")
    parser.add_argument("--tokens-file", type=Path, help="token file (hashes; default data-dir/tokens.json)")


def add_format_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=["jsonl", "realdata-csv"], default="jsonl",
                        help="jsonl: CloudEvents, one per line; realdata-csv: the flat permit-log CSV")


def event_records(args: argparse.Namespace, files: list[Path], mapping=None):
    """The records of event files in the format asked for."""
    from permitwatch.streams.inputs.readers import RealdataMapping, read_jsonl, read_realdata_csv

    if args.format == "jsonl":
        return read_jsonl(files)
    return read_realdata_csv(files, mapping if mapping is not None else RealdataMapping())


# ----- serving -----


def announce(settings: Settings, new_tokens: dict[str, str]) -> None:
    base = f"http://{settings.host}:{settings.port}"
    data = settings.data
    print(f"permitwatch listening on {base}  (database {data.database})")
    if new_tokens:
        print(f"New tokens (shown once; only their hashes are kept in {data.tokens}):")
        for name, token in new_tokens.items():
            print(f"  {name:<9} {token}")
        print(f"Console: {base}/console/#token={new_tokens['operator']}")
    else:
        print(f"Console: {base}/console/ (log in with an operator token: the one shown at the first start; "
              f"{data.tokens} keeps only hashes. `permitwatch token --name NAME --role operator` makes a "
              "new one and prints the entry to add to that file)")


class Terminated(Exception):
    """SIGTERM (`docker stop`, Kubernetes) arrived: shut down as for ^C."""


def _terminated(signum, frame) -> None:
    raise Terminated


def serve(settings: Settings, runtime) -> int:
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
