"""Commands of a Kafka deployment: worker, reference, api."""

from __future__ import annotations

import argparse
from pathlib import Path

from permitwatch.api.cli.common import (
    UsageError,
    add_clock_arguments,
    add_kafka_arguments,
    add_reference_arguments,
    add_server_arguments,
    announce,
    command,
    log_to_stderr,
    serve,
    settings_from,
)


def _configure_worker(parser: argparse.ArgumentParser) -> None:
    add_kafka_arguments(parser)
    parser.add_argument("--group", help="consumer group and faust app id (default permitwatch-worker)")
    parser.add_argument("--store", choices=["memory", "rocksdb"], help="where tables live (default memory; "
                        "rocksdb keeps them on disk across restarts)")
    parser.add_argument("--state-dir", type=Path, help="faust data directory, one per worker (default "
                        "./permitwatch-worker)")
    parser.add_argument("--group-instance-id", help="static group membership, e.g. the pod name: a restarted "
                        "worker with the same id takes its partitions back at once (or "
                        "PERMITWATCH_GROUP_INSTANCE_ID)")
    add_reference_arguments(parser, catalog=False)
    parser.add_argument("--metrics-port", type=int, help="Prometheus /metrics port, one per worker on a host "
                        "(default 9464, 0: none)")
    add_clock_arguments(parser)


@command("worker", "run a Kafka worker: the engine on the partitions this worker is assigned", _configure_worker)
def run_worker(args: argparse.Namespace) -> int:
    from permitwatch.api.compose import kafka_worker
    from permitwatch.streams.kafka.worker import serve as serve_worker

    settings = settings_from(args)
    log_to_stderr(settings.log_level)
    serve_worker(kafka_worker(settings))
    return 0


def _configure_reference(parser: argparse.ArgumentParser) -> None:
    add_kafka_arguments(parser)
    parser.add_argument("--catalog", type=Path, help="item catalog file: replaces the whole catalog on Kafka")
    parser.add_argument("--calendar", dest="calendars", type=Path, action="append", metavar="FILE",
                        help="calendar override file, added or replaced by version; repeatable")


@command("reference", "publish the item catalog and calendar overrides to Kafka (workers re-judge open cases)",
         _configure_reference)
def run_reference(args: argparse.Namespace) -> int:
    import asyncio

    from permitwatch.models.calendar import load_calendar
    from permitwatch.models.catalog import load_catalog
    from permitwatch.streams.kafka.reference import publish_reference
    from permitwatch.streams.kafka.topology import ensure_topics

    if args.catalog is None and not args.calendars:
        raise UsageError("give --catalog FILE and/or --calendar FILE")
    catalog = load_catalog(args.catalog) if args.catalog else None
    calendars = [load_calendar(path) for path in args.calendars or []]
    settings = settings_from(args)

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
    add_kafka_arguments(parser)
    add_server_arguments(parser, "the read model (a cache of the topics) and token files")
    add_reference_arguments(parser, catalog=False)
    add_clock_arguments(parser, "the workers' clock: ")


@command("api", "serve the API, console and /metrics over a Kafka deployment (the workers judge)", _configure_api)
def run_api(args: argparse.Namespace) -> int:
    from permitwatch.api.compose import kafka_api

    log_to_stderr()
    settings = settings_from(args)
    if not settings.kafka:
        raise UsageError("give --kafka HOST:PORT (or PERMITWATCH_KAFKA); without Kafka, `permitwatch run` "
                         "serves the embedded monitor")
    runtime = kafka_api(settings)
    announce(settings, runtime.new_tokens)
    print(f"Following {settings.topology.prefix}.* on {settings.bootstrap}")
    return serve(settings, runtime)
