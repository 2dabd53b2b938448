"""Bearer tokens: read-write tokens for everything under /api, read-only tokens for GETs only.

A plain ASGI middleware rather than a FastAPI dependency: a dependency on every route cost each request
about 60 µs of dependency solving, a sixth of ``POST /api/jobs`` (bench/RESULTS.md). The OpenAPI schema
still declares the scheme on every route it guards (:func:`declare_bearer`).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import SecretStr

from conveyor.api.asgi import ASGIApp, Receive, Scope, Send, header
from conveyor.api.settings import ApiSettings

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SCHEME = "HTTPBearer"


def guarded(path: str, settings: ApiSettings) -> bool:
    """Whether a request for ``path`` needs a token: the API, and /health and /metrics when so configured."""
    if path == "/api" or path.startswith("/api/"):
        return True
    return settings.protect_health_and_metrics and path in ("/health", "/metrics")


def refusal(authorization: bytes | None, method: str, settings: ApiSettings) -> tuple[int, str] | None:
    """None when the ``Authorization`` header allows ``method``; else (401 or 403, why)."""
    scheme, _, token = (authorization or b"").decode("latin-1").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return 401, "missing bearer token"
    if _matches(token, settings.tokens):
        return None
    if _matches(token, settings.read_only_tokens):
        return None if method in READ_METHODS else (403, "this token may only read")
    return 401, "unknown bearer token"


def _matches(token: str, candidates: list[SecretStr]) -> bool:
    return any(hmac.compare_digest(token.encode(), c.get_secret_value().encode()) for c in candidates)


class BearerAuth:
    """Answers 401 (no known token) or 403 (a read-only token changing something) before routing."""

    def __init__(self, app: ASGIApp, settings: ApiSettings) -> None:
        self.app, self.settings = app, settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and guarded(scope["path"], self.settings):
            authorization = header(scope, b"authorization")
            if refused := refusal(authorization, scope["method"], self.settings):
                code, detail = refused
                headers = {"WWW-Authenticate": "Bearer"} if code == 401 else None
                await JSONResponse({"detail": detail}, status_code=code, headers=headers)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def declare_bearer(app: FastAPI, settings: ApiSettings) -> Callable[[], dict[str, Any]]:
    """``app.openapi`` with the bearer scheme declared on every operation :func:`guarded` covers."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)  # fmt: skip
            description = "A token from settings.api.tokens or settings.api.read_only_tokens"
            schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes[SCHEME] = {"type": "http", "scheme": "bearer", "description": description}
            for path, operations in schema.get("paths", {}).items():
                if guarded(path, settings):
                    for operation in operations.values():
                        operation["security"] = [{SCHEME: []}]
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi
