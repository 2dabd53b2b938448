"""What the API's routes share: the engine, settings, health checks, metrics, and injected extras."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from fastapi import Request
from prometheus_client import CollectorRegistry

from conveyor.api.health import HealthMonitor
from conveyor.api.settings import ApiSettings
from conveyor.ingest.deadletters import Replayer
from conveyor.pipeline.engine import Engine
from conveyor.pipeline.engine.wakeup import WakeupListener


@dataclass
class ApiContext:
    engine: Engine
    settings: ApiSettings
    registry: CollectorRegistry
    #: The backing services' last checked health, which /health answers from.
    health: HealthMonitor
    #: Dead-letter replay with the ingest rules; None where this process has no rules to replay with.
    replayer: Replayer | None = None
    listener: WakeupListener | None = None
    #: The buckets conveyor serves (a backfill of another is refused).
    buckets: tuple[str, ...] = ()
    wakeups: asyncio.Event = field(default_factory=asyncio.Event)


def context_of(request: Request) -> ApiContext:
    """The context the app was created with (``create_app`` stores it on the app's state)."""
    context: ApiContext = request.app.state.context
    return context
