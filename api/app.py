"""The HTTP API: the original job service's routes and JSON, plus operators' views, /health and /metrics."""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from prometheus_client import Counter, Histogram

from conveyor import __version__
from conveyor.api import backfills, console, fast_path, jobs, limits, objects, problems, system, workers
from conveyor.api.asgi import ASGIApp, Message, Receive, Scope, Send
from conveyor.api.context import ApiContext
from conveyor.api.models import Problem
from conveyor.api.security import BearerAuth, declare_bearer
from conveyor.pipeline.lifecycle.metric_children import MetricChildren

#: What every protected route may answer besides its own responses.
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "The body could not be parsed (not JSON, or not UTF-8)"},
    401: {"model": Problem, "description": "No bearer token, or an unknown one"},
    403: {"model": Problem, "description": "A read-only token tried to change something"},
}


def create_app(context: ApiContext) -> FastAPI:
    # FastAPI's own OpenTelemetry bridge is off: conveyor's metrics are Prometheus (HttpMetrics), and the bridge's
    # check for a configured provider costs every request a few microseconds.
    app = FastAPI(title="conveyor", version=__version__, description="Jobs from file uploads: the conveyor HTTP API.",
                  telemetry={"tracing": False, "metrics": False, "logs": False})  # fmt: skip
    app.state.context = context
    for router in (jobs.router, workers.router, objects.router, backfills.router, limits.router):
        app.include_router(router, responses=AUTH_RESPONSES)
    if context.settings.protect_health_and_metrics:
        app.include_router(system.router, responses=AUTH_RESPONSES)
    else:
        app.include_router(system.router)
    app.include_router(system.liveness_router)
    console.install(app, context)
    problems.install(app)
    fast_path.install(app, context)  # innermost: authentication, metrics and the body limit apply to it
    app.add_middleware(BearerAuth, settings=context.settings)  # within HttpMetrics: refusals are counted
    app.add_middleware(HttpMetrics, context=context)
    app.add_middleware(BodyLimit, max_bytes=context.settings.max_body_bytes)
    app.openapi = declare_bearer(app, context.settings)  # type: ignore[method-assign]
    return app


class HttpMetrics:
    """Counts requests and times them by route template, method and status code.

    Plain ASGI: Starlette's ``BaseHTTPMiddleware`` (``@app.middleware``) ran every request through a task
    group and a streamed copy of its response, half of the API's time per request (bench/RESULTS.md).
    """

    def __init__(self, app: ASGIApp, context: ApiContext) -> None:
        self.app = app
        self.requests = Counter("conveyor_http_requests_total",
                                "HTTP requests by route template, method and status code.",
                                ["route", "method", "code"], registry=context.registry)  # fmt: skip
        self.durations = Histogram("conveyor_http_request_duration_seconds",
                                   "HTTP request handling time by route template.", ["route"],
                                   registry=context.registry)  # fmt: skip
        self._requests_of, self._durations_of = MetricChildren(self.requests), MetricChildren(self.durations)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, code = time.monotonic(), 500  # an exception that escapes every handler answers 500

        async def observed(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            template = getattr(scope.get("route"), "path", "unmatched")  # a bounded label: never the raw path
            self._requests_of(template, scope["method"], str(code)).inc()
            self._durations_of(template).observe(time.monotonic() - started)


class BodyLimit:
    """413 for a request body over ``max_bytes``, whether it declares its length or streams it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _too_large(self.max_bytes, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await _too_large(self.max_bytes, send)


class _TooLarge(Exception):
    pass


async def _too_large(limit: int, send: Send) -> None:
    response = JSONResponse({"detail": f"request body larger than {limit} bytes"}, status_code=413)
    await response({"type": "http"}, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}
