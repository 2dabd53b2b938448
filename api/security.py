"""Bearer tokens: read-write tokens for everything under /api, read-only tokens for GETs only."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from conveyor.api.context import context_of

bearer = HTTPBearer(auto_error=False, description="A token from settings.api.tokens or settings.api.read_only_tokens")
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _matches(token: str, candidates: list[str]) -> bool:
    return any(hmac.compare_digest(token.encode(), c.encode()) for c in candidates)


async def authorize(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    """401 without a known token; 403 when a read-only token tries to change something."""
    settings = context_of(request).settings
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token", {"WWW-Authenticate": "Bearer"})
    token = credentials.credentials
    if _matches(token, [t.get_secret_value() for t in settings.tokens]):
        return
    if _matches(token, [t.get_secret_value() for t in settings.read_only_tokens]):
        if request.method in READ_METHODS:
            return
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this token may only read")
    raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown bearer token", {"WWW-Authenticate": "Bearer"})
