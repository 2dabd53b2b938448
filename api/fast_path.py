"""The seed verbs without FastAPI's per-request machinery, for the well-formed request: ``POST /api/jobs``,
``POST /api/jobs/acquire`` and ``POST /api/jobs/{job_id}/complete``.

FastAPI's work around a route (routing, reading and parsing the body, solving dependencies, validating, and
serialising the response) took about a third of the API process's CPU per request, the largest share of the
gap between these verbs and a bare endpoint (bench/RESULTS.md). This middleware answers a request whose
body is valid JSON of the route's model and whose path parameters parse, with the route's own model, code
(:func:`conveyor.api.jobs.create`, :func:`~conveyor.api.jobs.acquire_one`, :func:`~conveyor.api.jobs.complete`)
and error answers (:mod:`conveyor.api.problems`, FastAPI's own handler for an ``HTTPException``). Any
other request (another content type, a body that does not parse or validate, a job id that is not a UUID)
goes to FastAPI with its body replayed, so a 422 naming the field, every other status and the OpenAPI
schema stay FastAPI's own.

It sits inside the authentication, metrics and body-limit middlewares, so those apply to both paths.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.routing import Match

from conveyor.api import jobs, problems
from conveyor.api.asgi import ASGIApp, Message, Receive, Scope, Send, header
from conveyor.api.context import ApiContext
from conveyor.api.models import Acquire, Complete, CreateJob

JSON_MEDIA_TYPE = b"application/json"

#: What a fast route does with the validated body and the converted path parameters.
Answer = Callable[[ApiContext, Any, Mapping[str, Any]], Awaitable[BaseModel | Response]]


@dataclass(frozen=True)
class FastRoute:
    """A route the fast path answers: FastAPI's own (to match the path, and to label the request metric), the
    model of its body, how each path parameter converts (a ValueError hands the request to FastAPI), what it
    answers, and its status code for a model it returns."""

    route: APIRoute
    model: type[BaseModel]
    answer: Answer
    status_code: int = 200
    path_params: Mapping[str, Callable[[str], Any]] = field(default_factory=dict)


class FastPath:
    """Answers the well-formed requests of ``routes``; hands everything else to ``app`` unchanged."""

    def __init__(self, app: ASGIApp, context: ApiContext, routes: Sequence[FastRoute]) -> None:
        self.app, self.context, self.routes = app, context, routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and _sends_json(scope):
            for fast in self.routes:
                match, child_scope = fast.route.matches(scope)
                if match is Match.FULL:
                    scope.update(child_scope)  # the route, as FastAPI's router records it for HttpMetrics' label
                    await self._answer(fast, scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _answer(self, fast: FastRoute, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        if body is None:
            return  # the client left before its body arrived: there is no one to answer
        try:
            request = fast.model.model_validate(json.loads(body))
            params = {name: convert(scope["path_params"][name]) for name, convert in fast.path_params.items()}
        except (ValueError, RecursionError):  # not UTF-8, not JSON, nested too deep, not valid, a bad path
            await self.app(scope, _replaying(body, receive), send)
            return
        response = await self._respond(fast, scope, request, params)
        await response(scope, receive, send)

    async def _respond(self, fast: FastRoute, scope: Scope, request: BaseModel, params: Mapping[str, Any]) -> Response:
        """The route's answer as FastAPI gives it: its model as JSON, or the response its errors map to."""
        try:
            answered = await fast.answer(self.context, request, params)
        except problems.DOMAIN_ERRORS as error:
            return problems.problem(error)
        except HTTPException as error:
            return await http_exception_handler(Request(scope), error)
        if isinstance(answered, Response):
            return answered
        return Response(answered.model_dump_json(by_alias=True), fast.status_code, media_type="application/json")


def install(app: FastAPI, context: ApiContext) -> None:
    """Add :class:`FastPath` for the app's own seed routes, inside the middlewares added after."""
    app.add_middleware(FastPath, context=context, routes=seed_routes())


def seed_routes() -> list[FastRoute]:
    """``POST /api/jobs``, ``/api/jobs/acquire`` and ``/api/jobs/{job_id}/complete``, as :mod:`conveyor.api.jobs`
    declares them."""
    return [
        FastRoute(route_of(jobs.create_job), CreateJob, _create, status_code=201),
        FastRoute(route_of(jobs.acquire), Acquire, _acquire),
        FastRoute(route_of(jobs.complete_job), Complete, _complete, path_params={"job_id": uuid.UUID}),
    ]


def route_of(endpoint: Callable[..., Any]) -> APIRoute:
    """FastAPI's route for ``endpoint`` in :mod:`conveyor.api.jobs`."""
    return next(r for r in jobs.router.routes if isinstance(r, APIRoute) and r.endpoint is endpoint)


async def _create(context: ApiContext, body: CreateJob, params: Mapping[str, Any]) -> BaseModel:
    return await jobs.create(context.engine, body)


async def _acquire(context: ApiContext, body: Acquire, params: Mapping[str, Any]) -> BaseModel | Response:
    return await jobs.acquire_one(context, body)


async def _complete(context: ApiContext, body: Complete, params: Mapping[str, Any]) -> BaseModel:
    return await jobs.complete(context, params["job_id"], body)


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
