"""The ASGI shapes conveyor's plain middlewares are written against (Starlette's own, spelled out)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of the request header ``name`` (lower case, as ASGI servers give names), or None."""
    return next((value for key, value in scope["headers"] if key == name), None)
