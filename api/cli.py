"""The `permitwatch` command line. Each sub-command is a thin adapter over the core."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

import orjson

from models.files import ReferenceFileError

COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int], str]] = {}


def command(name: str, help_text: str, configure: Callable[[argparse.ArgumentParser], None]):
    """Register a sub-command: `configure` adds its arguments, the decorated function runs it."""

    def bind(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = (configure, run, help_text)
        return run

    return bind


class UsageError(Exception):
    """A mistake in how the command was called; printed without a traceback."""


def _day(text: str) -> date:
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        from alerts.clock import local_date

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
    from alerts.clock import LegalClock, WorkingCalendar
    from models.calendar import load_calendar
    from models.common import Duration
    from models.settings import RuleSettings

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


# ---------------------------------------------------------------- schemas


def _configure_schemas(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("docs/schemas"), help="directory to write into")


@command("schemas", "write the JSON Schemas of the contract", _configure_schemas)
def run_schemas(args: argparse.Namespace) -> int:
    from models.schemas import write_schemas

    for path in write_schemas(args.out):
        print(path)
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
    except (UsageError, ReferenceFileError) as exc:
        print(f"permitwatch {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
