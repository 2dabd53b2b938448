"""``conveyor run``: the whole system in the foreground, as one readable log stream; Ctrl-C stops it all.

Brings the stack up (cached), migrates, bootstraps, then supervises ``conveyor ingest``, an autoscaled
``conveyor worker`` and ``conveyor api`` (each restarted if it dies), points Prometheus at them, uploads
the sample files on first run, and says where to look.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from conveyor import bootstrap
from conveyor.commands.admin import apply_migrations
from conveyor.pipeline.lifecycle.waiting import wait_for_event
from conveyor.pipeline.storage.client import object_exists, s3_client
from conveyor.samples import sample_uploads
from conveyor.settings import Settings
from conveyor.stack.manager import Stack, format_table
from conveyor.stack.prometheus import Prometheus

log = logging.getLogger("conveyor.run")

INGEST_METRICS_PORT = 19101
AUTOSCALER_METRICS_PORT = 19102
WORKER_METRICS_PORT_BASE = 19110
RESTART_BACKOFF_SECONDS = 2.0


def register(commands: Any) -> None:
    run = commands.add_parser("run", help="run everything in the foreground: stack, ingest, workers, API")
    run.add_argument("--no-stack", action="store_true", help="use services that are already running")
    run.add_argument("--autoscale", default="1:3", metavar="MIN:MAX", help="worker processes (default 1:3)")
    run.add_argument("--no-samples", action="store_true", help="do not upload the sample files")
    run.set_defaults(handler=_run)


@dataclass
class Child:
    """A supervised conveyor process."""

    name: str
    argv: list[str]
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = field(default=0)

    def start(self) -> None:
        # Its own session: a terminal's Ctrl-C reaches only `conveyor run`, which then asks each child to stop
        # exactly once (a second signal would make a child exit at once, without its graceful shutdown).
        self.process = subprocess.Popen(self.argv, env=self.env, start_new_session=True)
        log.info("started %s (pid %d)", self.name, self.process.pid)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def _run(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_run_async(settings, args))


async def _run_async(settings: Settings, args: argparse.Namespace) -> int:
    stack = Stack(settings)
    if not args.no_stack:
        await stack.up()
        print(format_table(await stack.status()), flush=True)
    await apply_migrations(settings)
    await bootstrap.bootstrap(settings.kafka, settings.s3, notifications=settings.stack.s3_server == "minio")
    children = _children(settings, args)
    _point_prometheus(stack, settings, args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    for child in children:
        child.start()
    if not args.no_samples:
        await _upload_samples(settings)
    _where_to_look(settings)
    await _supervise(children, stop)
    return 0


def _children(settings: Settings, args: argparse.Namespace) -> list[Child]:
    base = [sys.executable, "-m", "conveyor"]
    env = {k: v for k, v in os.environ.items()}
    worker = [*base, "worker", "--autoscale", args.autoscale, "--metrics-port-base", str(WORKER_METRICS_PORT_BASE)]
    return [
        Child("ingest", [*base, "ingest"], {**env, "CONVEYOR_METRICS__PORT": str(INGEST_METRICS_PORT)}),
        Child("workers", worker, {**env, "CONVEYOR_METRICS__PORT": str(AUTOSCALER_METRICS_PORT)}),
        Child("api", [*base, "api"], {**env, "CONVEYOR_METRICS__ENABLED": "false"}),
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


def _where_to_look(settings: Settings) -> None:
    api, bucket = f"http://{settings.api.host}:{settings.api.port}", settings.s3.buckets[0]
    token = settings.api.tokens[0].get_secret_value() if settings.api.tokens else "TOKEN"
    print(f"""
conveyor is running. Upload to s3://{bucket}/ ({settings.s3.endpoint}) and watch:
  conveyor jobs list                         the newest jobs, with their status
  conveyor jobs show JOB_ID                  one job: result, errors, dependencies
  curl -H 'Authorization: Bearer {token}' {api}/api/objects/{bucket}/samples/orders.csv
                                             what happened to one file
  conveyor dlq list                          messages that could not become jobs
  {api}/metrics  and  http://127.0.0.1:{settings.stack.prometheus_port} (Prometheus)
Ctrl-C stops everything gracefully.
""", flush=True)  # fmt: skip


async def _supervise(children: list[Child], stop: asyncio.Event) -> None:
    """Restart any child that dies until ``stop``; then wait for all of them to shut down."""
    while not stop.is_set():
        for child in children:
            if not child.alive():
                child.restarts += 1
                log.warning("%s exited (code %s); restarting", child.name, child.process and child.process.returncode)
                child.start()
        await wait_for_event(stop, RESTART_BACKOFF_SECONDS)
    log.info("stopping: ingest, workers and API shut down gracefully")
    deadline = time.monotonic() + 60
    for child in children:
        if child.process is not None and child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    for child in children:
        if child.process is not None:
            remaining = max(0.1, deadline - time.monotonic())
            try:
                await asyncio.to_thread(child.process.wait, remaining)
            except subprocess.TimeoutExpired:
                child.process.kill()
