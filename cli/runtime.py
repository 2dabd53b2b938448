"""What every long-running conveyor process shares: the engine's connections, signals, /metrics and probes."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from conveyor.pipeline.engine import Engine
from conveyor.pipeline.lifecycle.probes import Probes
from conveyor.settings import Settings, refuse_exposed_defaults

if TYPE_CHECKING:
    from wsgiref.types import StartResponse
    from wsgiref.types import WSGIApplication as WSGIApp

log = logging.getLogger(__name__)


#: Collect the youngest generation every this many allocations (Python's default is 700).
GC_YOUNG_THRESHOLD = 20_000


def tune_garbage_collector() -> None:
    """Set the cyclic garbage collector for a process that allocates per event and per job.

    What startup built (modules, settings, clients) is frozen out of every later collection, and the
    youngest generation is collected every 20,000 allocations instead of 700: with the defaults, ingest
    ran collections hundreds of times a second, over objects that live for the whole process.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)


def open_engine(settings: Settings) -> AbstractAsyncContextManager[Engine]:
    """An engine on a fresh pool, publishing wake-ups to Redis; everything is closed on exit."""
    return Engine.open(settings.postgres, settings.engine, settings.redis)


def serve_metrics(registry: CollectorRegistry, all_settings: Settings, probes: Probes | None = None) -> int | None:
    """Serve ``registry`` on /metrics (and ``probes`` on /health/live and /health/ready) in background threads.

    Returns the bound port (None when disabled).

    Refuses (:class:`ConfigurationError`) to listen beyond loopback while a published default secret is in use.
    """
    settings = all_settings.metrics
    if not settings.enabled:
        return None
    refuse_exposed_defaults(all_settings, settings.host, "the /metrics endpoint")
    server = make_server(settings.host, settings.port, _app(registry, probes), ThreadingWSGIServer, _QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-server", daemon=True).start()
    port = int(server.server_address[1])
    log.info("metrics on http://%s:%d/metrics", settings.host, port)
    return port


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # a scrape every few seconds is not news
        pass


def _app(registry: CollectorRegistry, probes: Probes | None) -> WSGIApp:
    """/metrics from ``registry``; /health/live and /health/ready (200 or 503, JSON) from ``probes``."""
    metrics = make_wsgi_app(registry)
    answers = {"/health/live": probes.liveness, "/health/ready": probes.readiness} if probes else {}

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        answer = answers.get(environ.get("PATH_INFO", ""))
        if answer is None:
            body: Iterable[bytes] = metrics(environ, start_response)
            return body
        result = answer()
        status = "200 OK" if result.ok else "503 Service Unavailable"
        start_response(status, [("Content-Type", "application/json")])
        return [json.dumps({"status": "ok" if result.ok else "failing", "detail": result.detail}).encode()]

    return app


@asynccontextmanager
async def probing(probes: Probes, engine: Engine, stop: asyncio.Event) -> AsyncIterator[None]:
    """Keep ``probes`` fresh (beats, PostgreSQL pings) while the block runs; unready once it ends."""
    task = asyncio.create_task(probes.run(engine.ping, stop), name="probes")
    try:
        yield
    finally:
        probes.stopping()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


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
