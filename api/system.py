"""/health (the backing services as the health monitor last found them), /health/live and /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from conveyor.api.context import context_of
from conveyor.api.models import HealthBody

router = APIRouter(tags=["system"])
#: Answered without a token even when /health is protected: it says only that the process serves requests.
liveness_router = APIRouter(tags=["system"])


@router.get("/health", response_model=HealthBody, responses={503: {"model": HealthBody}})
async def health(request: Request) -> JSONResponse:
    """healthy: every service up; degraded: an optional one down (200); unhealthy: a required one down (503).

    Answered from the last round of checks, which a side task runs every few seconds: a probe of /health
    opens no connection to any service. Checks older than a few rounds count as down.
    """
    body, code = context_of(request).health.report()
    return JSONResponse(body.model_dump(mode="json", by_alias=True), status_code=code)


@liveness_router.get("/health/live")
async def live() -> dict[str, str]:
    """200 while the process's event loop serves requests (an orchestrator's liveness probe); no I/O."""
    return {"status": "ok", "detail": "live"}


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(request: Request) -> Response:
    return Response(generate_latest(context_of(request).registry), media_type=CONTENT_TYPE_LATEST)
