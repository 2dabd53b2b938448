"""``conveyor worker``: run jobs, one process (``--concurrency N``) or an autoscaled set (``--autoscale MIN:MAX``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import subprocess
import sys
from typing import Any

from prometheus_client import CollectorRegistry

from conveyor import runtime
from conveyor.pipeline.engine.wakeup import redis_client
from conveyor.pipeline.handlers import builtin_handlers
from conveyor.pipeline.handlers.base import HandlerRegistry
from conveyor.pipeline.lifecycle.probes import Probes
from conveyor.pipeline.storage.client import s3_client
from conveyor.pipeline.worker.autoscale import AutoscaleMetrics, Autoscaler, Bounds
from conveyor.pipeline.worker.metrics import WorkerMetrics
from conveyor.pipeline.worker.worker import Worker
from conveyor.settings import Settings

log = logging.getLogger(__name__)


def register(commands: Any) -> None:
    worker = commands.add_parser("worker", help="claim and run jobs")
    worker.add_argument("--concurrency", type=int, help="jobs at once (default: settings.worker.concurrency)")
    worker.add_argument("--job-types", help="comma-separated job types to run (default: every registered handler)")
    worker.add_argument("--autoscale", metavar="MIN:MAX", help="supervise MIN..MAX worker processes by backlog")
    worker.add_argument("--name", help="worker name (default: host-pid)")
    worker.add_argument(
        "--metrics-port-base", type=int, default=0,
        help="with --autoscale: worker process i serves /metrics on BASE+i (0: any free port)",
    )  # fmt: skip
    worker.set_defaults(handler=_worker)


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    updates: dict[str, Any] = {}
    if args.concurrency is not None:
        updates["concurrency"] = args.concurrency
    if args.job_types:
        updates["job_types"] = [t.strip() for t in args.job_types.split(",") if t.strip()]
    settings = settings.model_copy(update={"worker": settings.worker.model_copy(update=updates)})
    if args.autoscale:
        asyncio.run(run_autoscaler(settings, Bounds.parse(args.autoscale), args))
    else:
        asyncio.run(run_worker(settings, name=args.name))
    return 0


def handlers_for(settings: Settings) -> HandlerRegistry:
    registry = builtin_handlers()
    for module in settings.worker.handler_modules:
        registry.load_module(module)
    return registry


async def run_worker(settings: Settings, *, name: str | None = None, stop: asyncio.Event | None = None) -> None:
    """One worker process until SIGTERM/SIGINT (a second signal exits at once)."""
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    probes = Probes()
    runtime.serve_metrics(registry, settings, probes)
    stop = stop or asyncio.Event()
    runtime.stop_on_signals(stop)
    redis = redis_client(settings.redis)
    try:
        async with runtime.open_engine(settings) as engine:
            worker = Worker(
                engine, handlers_for(settings), s3_client(settings.s3), redis, settings.worker, settings.engine,
                settings.redis, metrics, name=name,
            )  # fmt: skip
            runtime.tune_garbage_collector()
            async with runtime.probing(probes, engine, stop):
                await worker.run(stop)
    finally:
        await redis.aclose()


async def run_autoscaler(settings: Settings, bounds: Bounds, args: argparse.Namespace) -> None:
    """Supervise worker processes started exactly as a user would start them."""
    registry = CollectorRegistry()
    probes = Probes()
    runtime.serve_metrics(registry, settings, probes)
    stop = asyncio.Event()
    runtime.stop_on_signals(stop)
    argv = [sys.executable, "-m", "conveyor", "worker", "--concurrency", str(settings.worker.concurrency)]
    if settings.worker.job_types:
        argv += ["--job-types", ",".join(settings.worker.job_types)]

    holders: dict[int, subprocess.Popen[bytes]] = {}

    def spawn() -> subprocess.Popen[bytes]:
        # Children inherit our environment; each serves /metrics on its own port: any free one, or BASE+i for
        # the lowest i no live worker holds (a restarted worker takes its predecessor's, never a live one's).
        slot = next(i for i in range(bounds.maximum + 1) if i not in holders or holders[i].poll() is not None)
        port = args.metrics_port_base + slot if args.metrics_port_base else 0
        # A session of its own, so only the autoscaler's single SIGTERM stops it (gracefully).
        env = {**os.environ, "CONVEYOR_METRICS__PORT": str(port)}
        holders[slot] = subprocess.Popen([*argv], env=env, start_new_session=True)
        return holders[slot]

    async with runtime.open_engine(settings) as engine:
        scaler = Autoscaler(
            engine, settings.worker, bounds, spawn, AutoscaleMetrics(registry), settings.worker.job_types
        )
        log.info("autoscaling %d..%d worker processes", bounds.minimum, bounds.maximum)
        async with runtime.probing(probes, engine, stop):
            await scaler.run(stop)
