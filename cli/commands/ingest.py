"""``conveyor ingest``, ``conveyor pipelines check|match`` and ``conveyor dlq list|replay``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry

from conveyor import runtime
from conveyor.db.records import DeadLetterRow
from conveyor.ingest.consumer import Ingestor
from conveyor.ingest.deadletters import Replayer
from conveyor.ingest.events import UploadEvent
from conveyor.ingest.metrics import IngestMetrics, ReconcileMetrics
from conveyor.ingest.reconciler import Reconciler
from conveyor.ingest.retention import check_event_retention, topic_retention_seconds
from conveyor.ingest.routing import describe, load_rules, route
from conveyor.pipeline.lifecycle.probes import Probes
from conveyor.pipeline.lifecycle.tasks import Supervisor, task_failures_counter
from conveyor.pipeline.storage.client import s3_client
from conveyor.settings import Settings

log = logging.getLogger(__name__)


def register(commands: Any) -> None:
    ingest = commands.add_parser("ingest", help="consume bucket events from Kafka and create their jobs")
    ingest.set_defaults(handler=_ingest)

    pipelines = commands.add_parser("pipelines", help="check the routing rules, or see what an object would start")
    actions = pipelines.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="validate a pipelines file (default: the configured one)")
    check.add_argument("file", nargs="?", type=Path)
    check.set_defaults(handler=_pipelines_check)
    match = actions.add_parser("match", help="the pipelines an upload of s3://bucket/key would start")
    match.add_argument("url", help="s3://bucket/key")
    match.add_argument("--size", type=int, default=None)
    match.add_argument("--content-type", default=None)
    match.add_argument("--event", default="s3:ObjectCreated:Put")
    match.set_defaults(handler=_pipelines_match)

    dlq = commands.add_parser("dlq", help="dead letters: messages that could not become jobs")
    dlq_actions = dlq.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = dlq_actions.add_parser("list", help="open dead letters, newest first")
    listing.add_argument("--all", action="store_true", help="include replayed ones")
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(handler=_dlq_list)
    replay = dlq_actions.add_parser("replay", help="send dead letters through routing again")
    replay.add_argument("ids", nargs="+", type=int)
    replay.set_defaults(handler=_dlq_replay)


def _ingest(settings: Settings, args: argparse.Namespace) -> int:
    asyncio.run(run_ingestor(settings))
    return 0


async def run_ingestor(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run one ingest group member (and its turn at reconciling) until SIGTERM/SIGINT (or ``stop``)."""
    rules = load_rules(settings.ingest.pipelines_file)
    registry = CollectorRegistry()
    metrics = IngestMetrics(registry)
    probes = Probes()
    runtime.serve_metrics(registry, settings, probes)
    stop = stop or asyncio.Event()
    runtime.stop_on_signals(stop)
    retention = settings.engine.retention.events_after_seconds
    if retention is not None:
        check_event_retention(retention, await topic_retention_seconds(settings.kafka), settings.kafka.events_topic)
    async with runtime.open_engine(settings) as engine:
        ingestor = Ingestor(engine, rules, settings.ingest, settings.kafka, metrics, buckets=settings.s3.buckets)
        side = Supervisor(task_failures_counter(registry))
        if settings.reconcile.enabled:
            reconciler = Reconciler(engine, s3_client(settings.s3), rules, settings.s3, settings.ingest,
                                    settings.reconcile, ReconcileMetrics(registry))  # fmt: skip
            side.start("reconciler", lambda: reconciler.run(stop))
        await ingestor.start()
        runtime.tune_garbage_collector()
        log.info("ingesting %s as group %s", settings.kafka.events_topic, settings.ingest.group_id)
        try:
            async with runtime.probing(probes, engine, stop):
                await ingestor.run(stop)
        finally:
            await side.close()
            await ingestor.stop()


def _pipelines_check(settings: Settings, args: argparse.Namespace) -> int:
    rules = load_rules(args.file or settings.ingest.pipelines_file)
    print(f"ok: {len(rules.pipeline)} pipelines")
    for line in describe(rules.pipeline):
        print(line)
    return 0


def _pipelines_match(settings: Settings, args: argparse.Namespace) -> int:
    url = urlsplit(args.url)
    if url.scheme != "s3" or not url.netloc or not url.path.lstrip("/"):
        print("conveyor: expected s3://bucket/key", file=sys.stderr)
        return 2
    event = UploadEvent(
        bucket=url.netloc, key=url.path[1:], event_name=args.event, size=args.size, content_type=args.content_type
    )
    routed = route(
        event, load_rules(settings.ingest.pipelines_file), max_lineage_depth=settings.ingest.max_lineage_depth
    )
    if not routed.pipelines:
        print(f"no pipeline matches {args.url}")
        return 1
    for line in describe(routed.pipelines):
        print(line)
    return 0


def _dlq_list(settings: Settings, args: argparse.Namespace) -> int:
    async def fetch() -> list[DeadLetterRow]:
        async with runtime.open_engine(settings) as engine:
            return await engine.objects.dead_letters(include_replayed=args.all, limit=args.limit)

    letters = asyncio.run(fetch())
    if not letters:
        print("no dead letters")
    for letter in letters:
        state = f"replayed {letter.replayed_at:%Y-%m-%d %H:%M:%S}" if letter.replayed_at else "open"
        print(f"#{letter.id}  {letter.created_at:%Y-%m-%d %H:%M:%S}  {letter.reason:<22} {state}")
        print(f"      {letter.error}")
        origin = f"{letter.source_topic}[{letter.source_partition}]@{letter.source_offset}"
        last = f"; last replay: {letter.last_replay_error}" if letter.last_replay_error else ""
        print(f"      from {origin}, {len(letter.message_value)} bytes{last}")
    return 0


def _dlq_replay(settings: Settings, args: argparse.Namespace) -> int:
    async def replay_all() -> int:
        failures = 0
        async with runtime.open_engine(settings) as engine:
            replayer = Replayer.configured(engine, settings.ingest)
            for letter_id in args.ids:
                outcome = await replayer.replay(letter_id)
                if outcome is None:
                    print(f"#{letter_id}: no such dead letter")
                    failures += 1
                elif outcome.letter.replayed_at is None:
                    print(f"#{letter_id}: still failing: {outcome.letter.last_replay_error}")
                    failures += 1
                else:
                    print(f"#{letter_id}: replayed, {outcome.jobs_created} jobs created")
        return failures

    return 1 if asyncio.run(replay_all()) else 0
