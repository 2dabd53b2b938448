"""``POST /api/jobs`` without FastAPI's per-request machinery, for the well-formed request.

FastAPI's work around a route (routing, reading and parsing the body, solving dependencies, validating, and
serialising the response) took about a third of the API process's CPU per created job, the largest share of
the gap between ``POST /api/jobs`` and a bare endpoint (bench/RESULTS.md). This middleware answers a request
whose body is valid JSON of a :class:`CreateJob` itself, with the route's own model, code
(:func:`conveyor.api.jobs.create`) and error answers (:mod:`conveyor.api.problems`). Any other request
(another content type, a body that does not parse or validate) goes to FastAPI with its body replayed, so a
422 naming the field, every other status and the OpenAPI schema stay FastAPI's own.

It sits inside the authentication, metrics and body-limit middlewares, so those apply to both paths.
"""

from __future__ import annotations

import json

from fastapi import FastAPI, Response
from fastapi.routing import APIRoute
from starlette.routing import Match

from conveyor.api import jobs, problems
from conveyor.api.asgi import ASGIApp, Message, Receive, Scope, Send, header
from conveyor.api.models import CreateJob
from conveyor.pipeline.engine import Engine

JSON_MEDIA_TYPE = b"application/json"


class FastCreate:
    """Creates the job of a well-formed ``POST /api/jobs``; hands everything else to ``app`` unchanged."""

    def __init__(self, app: ASGIApp, engine: Engine, route: APIRoute) -> None:
        self.app, self.engine, self.route = app, engine, route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and _sends_json(scope):
            match, child_scope = self.route.matches(scope)
            if match is Match.FULL:
                scope.update(child_scope)  # the route, as FastAPI's router records it for HttpMetrics' label
                await self._create(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _create(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        if body is None:
            return  # the client left before its body arrived: there is no one to answer
        try:
            request = CreateJob.model_validate(json.loads(body))
        except (ValueError, RecursionError):  # not UTF-8, not JSON, nested too deep, or not a valid CreateJob
            await self.app(scope, _replaying(body, receive), send)
            return
        try:
            created = await jobs.create(self.engine, request)
        except problems.DOMAIN_ERRORS as error:
            response: Response = problems.problem(error)
        else:
            response = Response(created.model_dump_json(by_alias=True), 201, media_type="application/json")
        await response(scope, receive, send)


def install(app: FastAPI, engine: Engine) -> None:
    """Add :class:`FastCreate` for the app's own ``POST /api/jobs`` route, inside the middlewares added after."""
    app.add_middleware(FastCreate, engine=engine, route=create_route())


def create_route() -> APIRoute:
    """FastAPI's route for ``POST /api/jobs``, as :mod:`conveyor.api.jobs` declares it."""
    return next(r for r in jobs.router.routes if isinstance(r, APIRoute) and r.endpoint is jobs.create_job)


def _sends_json(scope: Scope) -> bool:
    """Whether the request declares a JSON body; FastAPI alone answers other (or missing) content types."""
    declared = header(scope, b"content-type") or b""
    return declared.partition(b";")[0].strip().lower() == JSON_MEDIA_TYPE


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body; None when the client disconnects first."""
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """``receive`` that first gives ``body`` whole, then whatever the connection sends next (a disconnect)."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
