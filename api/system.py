"""/health (each backing service checked for real, time-bounded), /health/live and /metrics."""

from __future__ import annotations

import asyncio
import time

from aiokafka.admin import AIOKafkaAdminClient
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from conveyor.api.context import HealthCheck, context_of
from conveyor.api.models import HealthBody, ServiceCheck
from conveyor.ingest.settings import KafkaSettings
from conveyor.pipeline.engine import Engine
from conveyor.pipeline.engine.settings import RedisSettings
from conveyor.pipeline.engine.wakeup import redis_client
from conveyor.pipeline.storage.client import s3_client
from conveyor.pipeline.storage.settings import S3Settings

router = APIRouter(tags=["system"])
#: Answered without a token even when /health is protected: it says only that the process serves requests.
liveness_router = APIRouter(tags=["system"])
CHECK_TIMEOUT_SECONDS = 2.0


@router.get("/health", response_model=HealthBody, responses={503: {"model": HealthBody}})
async def health(request: Request) -> JSONResponse:
    """healthy: every service up; degraded: an optional one down (200); unhealthy: a required one down (503)."""
    context = context_of(request)
    names = list(context.checks)
    results = await asyncio.gather(*(_run(*context.checks[name]) for name in names))
    services = dict(zip(names, results, strict=True))
    if any(s.status == "down" and s.required for s in services.values()):
        overall, code = "unhealthy", 503
    elif any(s.status == "down" for s in services.values()):
        overall, code = "degraded", 200
    else:
        overall, code = "healthy", 200
    body = HealthBody(status=overall, services=services)
    return JSONResponse(body.model_dump(mode="json", by_alias=True), status_code=code)


async def _run(check: HealthCheck, required: bool) -> ServiceCheck:
    started = time.monotonic()
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
    except Exception as exc:  # noqa: BLE001 - any failure of a check means that service is down
        error = f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__
        return ServiceCheck(status="down", required=required, latency_ms=_ms(started), error=error)
    return ServiceCheck(status="up", required=required, latency_ms=_ms(started))


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


@liveness_router.get("/health/live")
async def live() -> dict[str, str]:
    """200 while the process's event loop serves requests (an orchestrator's liveness probe); no I/O."""
    return {"status": "ok", "detail": "live"}


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(request: Request) -> Response:
    return Response(generate_latest(context_of(request).registry), media_type=CONTENT_TYPE_LATEST)


def standard_checks(
    engine: Engine, redis: RedisSettings, kafka: KafkaSettings, s3: S3Settings
) -> dict[str, tuple[HealthCheck, bool]]:
    """PostgreSQL is required (jobs live there); Redis, Kafka and the object store degrade the service."""

    async def postgres() -> None:
        await engine.ping()

    async def redis_check() -> None:
        client = redis_client(redis)
        try:
            await client.ping()
        finally:
            await client.aclose()

    async def kafka_check() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers, request_timeout_ms=2000)
        await admin.start()
        try:
            await admin.describe_cluster()
        finally:
            await admin.close()

    async def object_store() -> None:
        await asyncio.to_thread(s3_client(s3, timeout_seconds=CHECK_TIMEOUT_SECONDS, retries=0).list_buckets)

    return {"postgres": (postgres, True), "redis": (redis_check, False), "kafka": (kafka_check, False),
            "minio": (object_store, False)}  # fmt: skip
