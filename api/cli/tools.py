"""Commands that compute or write files: a deadline by hand, a simulated city, the rules, the
contract's schemas and the topics' AsyncAPI document."""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from pathlib import Path

import orjson

from permitwatch.api.cli.common import UsageError, command, day


def _configure_deadline(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--start", type=day, required=True, help="the trigger day (not counted), YYYY-MM-DD")
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
    from permitwatch.streams.simulation.city import CitySimulator

    if args.cases < 1 or (args.departments is not None and args.departments < 1):
        raise UsageError("--cases and --departments must be at least 1")
    if not 0 <= args.violation_rate <= 1:
        raise UsageError("--violation-rate is a share between 0 and 1")
    simulator = CitySimulator(seed=args.seed, departments=args.departments, violation_rate=args.violation_rate)
    out = sys.stdout.buffer if args.out == "-" else open(args.out, "wb")  # noqa: SIM115 (stdout stays open)
    try:
        for _, raw in simulator.events(cases=args.cases):
            out.write(raw + b"\n")
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    if args.ground_truth is not None:
        args.ground_truth.write_bytes(b"".join(orjson.dumps(e.to_json()) + b"\n" for e in simulator.ground_truth))
    print(f"{args.cases} cases ({simulator.catalog.version} catalog: replay with `--catalog` "
          "deploy/reference/catalog.json)", file=sys.stderr)
    return 0

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
