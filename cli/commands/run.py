"""``conveyor run``: the whole system in the foreground, as one readable log stream; Ctrl-C stops it all.

Brings the stack up (cached), migrates, bootstraps, then supervises ``conveyor ingest``, an autoscaled
``conveyor worker`` and ``conveyor api`` (each restarted with backoff if it dies), points Prometheus at
them, uploads the sample files on first run, says where to look (with commands that work as printed in
the user's shell), and prints one line per finished pipeline unless ``--quiet``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor import bootstrap, runtime
from conveyor.commands.admin import apply_migrations
from conveyor.feed import PipelineFeed
from conveyor.pipeline.lifecycle.processes import ProcessSupervisor
from conveyor.pipeline.lifecycle.tasks import Supervisor
from conveyor.pipeline.lifecycle.waiting import wait_for_event
from conveyor.pipeline.storage.client import object_exists, s3_client
from conveyor.samples import sample_uploads
from conveyor.settings import Settings, refuse_exposed_defaults
from conveyor.stack.manager import Stack, format_table
from conveyor.stack.prometheus import Prometheus

log = logging.getLogger("conveyor.run")

INGEST_METRICS_PORT = 19101
AUTOSCALER_METRICS_PORT = 19102
WORKER_METRICS_PORT_BASE = 19110
RESTART_BACKOFF_SECONDS = 2.0
#: Worker processes, MIN:MAX: one at light load, more while a backlog lasts.
DEFAULT_AUTOSCALE = "1:3"


def register(commands: Any) -> None:
    run = commands.add_parser("run", help="run everything in the foreground: stack, ingest, workers, API")
    run.add_argument("--no-stack", action="store_true", help="use services that are already running")
    run.add_argument(
        "--autoscale",
        default=DEFAULT_AUTOSCALE,
        metavar="MIN:MAX",
        help=f"worker processes (default {DEFAULT_AUTOSCALE})",
    )
    run.add_argument("--no-samples", action="store_true", help="do not upload the sample files")
    run.add_argument("--quiet", action="store_true", help="no line per finished pipeline")
    run.set_defaults(handler=_run)


@dataclass(frozen=True)
class ChildSpec:
    """How to start one of the processes ``conveyor run`` supervises."""

    name: str
    argv: list[str]
    env: dict[str, str]

    def spawn(self) -> subprocess.Popen[bytes]:
        # Its own session: a terminal's Ctrl-C reaches only `conveyor run`, which then asks each child to stop
        # exactly once (a second signal would make a child exit at once, without its graceful shutdown).
        return subprocess.Popen(self.argv, env=self.env, start_new_session=True)


def _run(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_run_async(settings, args))


async def _run_async(settings: Settings, args: argparse.Namespace) -> int:
    refuse_exposed_defaults(settings, settings.api.host, "conveyor run's API")
    stack = Stack(settings)
    if not args.no_stack:
        await stack.up()
        print(format_table(await stack.status()), flush=True)
    await apply_migrations(settings)
    await bootstrap.bootstrap(settings.kafka, settings.s3, notifications=settings.stack.s3_server == "minio")
    _point_prometheus(stack, settings, args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    children = ProcessSupervisor(first_backoff_seconds=RESTART_BACKOFF_SECONDS)
    for child in _children(settings, args):
        children.add(child.name, child.spawn)
    async with runtime.open_engine(settings) as engine:
        if not args.no_samples:
            await _upload_samples(settings)
        _where_to_look(settings)
        await _supervise(children, PipelineFeed(engine) if not args.quiet else None, stop)
    return 0


def _children(settings: Settings, args: argparse.Namespace) -> list[ChildSpec]:
    base = [sys.executable, "-m", "conveyor"]
    env = dict(os.environ)
    worker = [*base, "worker", "--autoscale", args.autoscale, "--metrics-port-base", str(WORKER_METRICS_PORT_BASE)]
    return [
        ChildSpec("ingest", [*base, "ingest"], {**env, "CONVEYOR_METRICS__PORT": str(INGEST_METRICS_PORT)}),
        ChildSpec("workers", worker, {**env, "CONVEYOR_METRICS__PORT": str(AUTOSCALER_METRICS_PORT)}),
        ChildSpec("api", [*base, "api"], {**env, "CONVEYOR_METRICS__ENABLED": "false"}),
    ]


def _point_prometheus(stack: Stack, settings: Settings, args: argparse.Namespace) -> None:
    prometheus = next((s for s in stack.services if isinstance(s, Prometheus)), None)
    if prometheus is None:
        return
    maximum = int(args.autoscale.partition(":")[2] or 1)
    prometheus.prepare()
    prometheus.write_targets("api", [f"127.0.0.1:{settings.api.port}"], {"process": "api"})
    prometheus.write_targets("ingest", [f"127.0.0.1:{INGEST_METRICS_PORT}"], {"process": "ingest"})
    workers = [f"127.0.0.1:{WORKER_METRICS_PORT_BASE + i}" for i in range(maximum)]
    prometheus.write_targets("worker", [*workers, f"127.0.0.1:{AUTOSCALER_METRICS_PORT}"], {"process": "worker"})


async def _upload_samples(settings: Settings) -> None:
    client, bucket = s3_client(settings.s3), settings.s3.buckets[0]
    for key, data in sample_uploads().items():
        if not await asyncio.to_thread(object_exists, client, bucket, key):
            await asyncio.to_thread(client.put_object, bucket, key, io.BytesIO(data), len(data))
            log.info("uploaded s3://%s/%s", bucket, key)


def invocation() -> str:
    """How the user's shell reaches this conveyor: ``conveyor`` when PATH finds this very installation,
    else the script's path (relative to the current directory when inside it, as after ``make run``)."""
    script = Path(sys.executable).parent / "conveyor"
    found = shutil.which("conveyor")
    if found is not None and Path(found).resolve() == script.resolve():
        return "conveyor"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def where_to_look(settings: Settings) -> str:
    """The commands and addresses that show what conveyor is doing, each usable as printed."""
    api, bucket = f"http://{settings.api.host}:{settings.api.port}", settings.s3.buckets[0]
    token = settings.api.tokens[0].get_secret_value() if settings.api.tokens else "TOKEN"
    me = invocation()
    commands = [
        (f"{me} jobs list", "the newest jobs, with their status"),
        (f"{me} jobs show JOB_ID", "one job: result, errors, dependencies"),
        (f"curl -H 'Authorization: Bearer {token}' {api}/api/objects/{bucket}/samples/orders.csv", ""),
        ("", "what happened to one file"),
        (f"{me} dlq list", "messages that could not become jobs"),
    ]
    width = max(len(command) for command, description in commands if description and command)
    lines = [f"  {command:<{width}}  {description}".rstrip() for command, description in commands]
    return "\n".join([
        "", f"conveyor is running. Upload to s3://{bucket}/ ({settings.s3.endpoint}) and watch:",
        f"  {api}/ui  the console (sign in with an API token)", *lines,
        f"  {api}/metrics  and  http://127.0.0.1:{settings.stack.prometheus_port} (Prometheus)",
        "A line per finished pipeline follows (--quiet turns it off). Ctrl-C stops everything gracefully.", "",
    ])  # fmt: skip


def _where_to_look(settings: Settings) -> None:
    print(where_to_look(settings), flush=True)


async def _supervise(children: ProcessSupervisor, feed: PipelineFeed | None, stop: asyncio.Event) -> None:
    """Restart any child that dies (and print the feed) until ``stop``; then shut everything down gracefully."""
    side = Supervisor()
    if feed is not None:
        side.start("pipeline_feed", lambda: feed.run(stop))
    while not stop.is_set():
        children.check_once()
        await wait_for_event(stop, 1.0)
    log.info("stopping: ingest, workers and API shut down gracefully")
    await side.close()
    await children.stop_all(grace_seconds=60)
