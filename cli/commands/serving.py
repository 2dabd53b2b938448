"""Serving the HTTP API in this process: the app, uvicorn, and the side tasks the API runs beside them.

Apart from :mod:`conveyor.commands.api` (the command's arguments) so that FastAPI, uvicorn and the app load
only in a process that serves: ``conveyor`` builds every command's parser at start, and importing this
module with it cost each worker, ingestor and CLI verb 0.4 s of CPU at start (1.10 s instead of 0.71 s).
"""

from __future__ import annotations

import asyncio
import logging

import uvicorn
from prometheus_client import CollectorRegistry

from conveyor import runtime
from conveyor.api.app import create_app
from conveyor.api.cluster_metrics import ClusterMetrics, ClusterMetricsRefresher
from conveyor.api.console.throughput import Throughput, console_throughput
from conveyor.api.context import ApiContext
from conveyor.api.health import HealthMonitor, StandardChecks
from conveyor.ingest.deadletters import Replayer
from conveyor.pipeline.engine import Engine
from conveyor.pipeline.engine.wakeup import WakeupListener, redis_client
from conveyor.pipeline.lifecycle.tasks import Supervisor, task_failures_counter
from conveyor.pipeline.lifecycle.waiting import wait_for_event
from conveyor.pipeline.maintenance.leader import MaintenanceLeader
from conveyor.pipeline.maintenance.metrics import MaintenanceMetrics
from conveyor.settings import Settings

log = logging.getLogger(__name__)
WAKE_HOLD_SECONDS = 0.05


def build_context(
    settings: Settings, engine: Engine, registry: CollectorRegistry, checks: StandardChecks
) -> ApiContext:
    """The API's dependencies, including dead-letter replay with the configured ingest rules."""
    health = HealthMonitor(checks.checks(), interval_seconds=settings.api.health_check_interval_seconds)
    replayer = Replayer.configured(engine, settings.ingest)
    return ApiContext(engine=engine, settings=settings.api, registry=registry, health=health, replayer=replayer,
                      buckets=tuple(settings.s3.buckets))  # fmt: skip


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM/SIGINT (uvicorn's own handling) or ``stop``."""
    registry = CollectorRegistry()
    async with runtime.open_engine(settings) as engine:
        checks = StandardChecks(engine, settings.redis, settings.kafka, settings.s3)
        context = build_context(settings, engine, registry, checks)
        await context.health.run_once()  # so /health answers from a real round from the first request on
        redis = redis_client(settings.redis)
        context.listener = WakeupListener(redis, settings.redis)
        app = create_app(context)
        server = uvicorn.Server(uvicorn.Config(app, host=settings.api.host, port=settings.api.port,
                                               log_level="warning", lifespan="off"))  # fmt: skip
        done = stop or asyncio.Event()
        side = _side_tasks(settings, context, done, console_throughput(app))
        runtime.tune_garbage_collector()
        log.info("API on http://%s:%d (OpenAPI at /docs)", settings.api.host, settings.api.port)
        try:
            serving = asyncio.create_task(server.serve())
            await asyncio.wait([serving, asyncio.create_task(done.wait())], return_when=asyncio.FIRST_COMPLETED)
            server.should_exit = True
            await serving
        finally:
            done.set()
            await side.close()
            await redis.aclose()
            await checks.aclose()


def _side_tasks(settings: Settings, context: ApiContext, stop: asyncio.Event, throughput: Throughput) -> Supervisor:
    """The API's supervised side tasks: wake-ups for long polls, the cluster gauges, maintenance, the health
    checks /health answers from, and the console's traffic of the last hour."""
    engine, registry, listener = context.engine, context.registry, context.listener
    assert listener is not None
    refresher = ClusterMetricsRefresher(engine, ClusterMetrics(registry), settings.api.cluster_metrics_interval_seconds,
                                        buckets=settings.s3.buckets)  # fmt: skip
    # HTTP workers need rescuing too: the API campaigns for the maintenance leadership like every worker.
    maintenance = MaintenanceLeader(engine, settings.engine, MaintenanceMetrics(registry))
    side = Supervisor(task_failures_counter(registry))
    side.start("wakeup_listener", lambda: listener.run(stop))
    side.start("wakeup_relay", lambda: _relay(context, stop))
    side.start("cluster_metrics", lambda: refresher.run(stop))
    side.start("maintenance", lambda: maintenance.run(stop))
    side.start("health_checks", lambda: context.health.run(stop))
    interval = settings.api.cluster_metrics_interval_seconds
    side.start("console_throughput", lambda: throughput.run(stop, interval))
    return side


async def _relay(context: ApiContext, stop: asyncio.Event) -> None:
    """Turn each Redis wake-up into a short pulse every long-polling acquire sees."""
    assert context.listener is not None
    while not stop.is_set():
        await context.listener.event.wait()
        context.listener.event.clear()
        context.wakeups.set()
        await wait_for_event(stop, WAKE_HOLD_SECONDS)
        context.wakeups.clear()
