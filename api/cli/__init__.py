"""The `permitwatch` command line: one sub-command per task, each a thin adapter that builds what
it needs in the composition root (`api/compose.py`). Commands are grouped by what they serve:
`monitor` (the embedded monitor and its clients), `kafka` (a Kafka deployment), `history` (replay
and import of event logs), `tools` (deadlines, simulation, documents)."""

from __future__ import annotations

import argparse
import os
import sys

from pydantic import ValidationError
from pydantic_settings import SettingsError

from permitwatch.api.cli import history, kafka, monitor, tools  # noqa: F401  (they register their commands)
from permitwatch.api.cli.common import COMMANDS
from permitwatch.models.errors import PermitwatchError
from permitwatch.models.files import describe_validation_error


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
    except SettingsError as exc:  # a PERMITWATCH_* variable pydantic-settings could not even parse
        print(f"permitwatch {args.command}: settings: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `| head`: the reader has what it wanted; nothing more to flush at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130
