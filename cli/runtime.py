"""What every long-running conveyor process shares: the engine's connections, signals, /metrics."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from contextlib import AbstractAsyncContextManager

from prometheus_client import CollectorRegistry, start_http_server

from conveyor.pipeline.engine import Engine
from conveyor.settings import Settings, refuse_exposed_defaults

log = logging.getLogger(__name__)


def open_engine(settings: Settings) -> AbstractAsyncContextManager[Engine]:
    """An engine on a fresh pool, publishing wake-ups to Redis; everything is closed on exit."""
    return Engine.open(settings.postgres, settings.engine, settings.redis)


def serve_metrics(registry: CollectorRegistry, all_settings: Settings) -> int | None:
    """Serve ``registry`` on /metrics in a background thread; the bound port (None when disabled).

    Refuses (:class:`ConfigurationError`) to listen beyond loopback while a published default secret is in use.
    """
    settings = all_settings.metrics
    if not settings.enabled:
        return None
    refuse_exposed_defaults(all_settings, settings.host, "the /metrics endpoint")
    server, _ = start_http_server(settings.port, addr=settings.host, registry=registry)
    port = int(server.server_address[1])
    log.info("metrics on http://%s:%d/metrics", settings.host, port)
    return port


def stop_on_signals(stop: asyncio.Event, *, second_signal_exits: bool = True) -> None:
    """SIGTERM/SIGINT set ``stop`` (a graceful shutdown); a second one exits at once."""
    loop = asyncio.get_running_loop()

    def handle(sig: signal.Signals) -> None:
        if stop.is_set() and second_signal_exits:
            log.warning("second %s: exiting now", sig.name)
            os._exit(128 + sig)
        log.info("%s received: shutting down gracefully (send it again to exit at once)", sig.name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, handle, sig)
