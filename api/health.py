"""The backing services' health, checked by a side task on clients it keeps, for /health to read.

A probe of /health then opens no connection to any service: a load balancer polling it costs PostgreSQL,
Redis, Kafka and the object store one check each per round, whatever the number of probes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from aiokafka.admin import AIOKafkaAdminClient

from conveyor.api.models import HealthBody, ServiceCheck
from conveyor.ingest.settings import KafkaSettings
from conveyor.pipeline.engine import Engine
from conveyor.pipeline.engine.settings import RedisSettings
from conveyor.pipeline.engine.wakeup import redis_client
from conveyor.pipeline.lifecycle.periodic import every
from conveyor.pipeline.storage.client import s3_client
from conveyor.pipeline.storage.settings import S3Settings

#: A named, time-bounded check of one backing service; raises when the service is down.
HealthCheck = Callable[[], Awaitable[None]]
CHECK_TIMEOUT_SECONDS = 2.0
#: Answers older than this many rounds (and one check's time) count as down: the checking task is stuck.
STALE_ROUNDS = 3


class HealthMonitor:
    """The backing services' health: ``run_once()`` checks each (time-bounded, concurrently) and keeps the
    answers; ``report()`` reads them; ``run()`` checks every ``interval_seconds``."""

    def __init__(
        self, checks: dict[str, tuple[HealthCheck, bool]], *, interval_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self._checks, self.interval, self._clock = checks, interval_seconds, clock
        self._services: dict[str, ServiceCheck] = {}
        self._checked_at: float | None = None

    async def run_once(self) -> None:
        names = list(self._checks)
        results = await asyncio.gather(*(_run(*self._checks[name]) for name in names))
        self._services, self._checked_at = dict(zip(names, results, strict=True)), self._clock()

    async def run(self, stop: asyncio.Event) -> None:
        await every(self.interval, self.run_once, stop, name="health checks")

    def report(self) -> tuple[HealthBody, int]:
        """The last answers as /health's body and status code; all down when they are missing or stale."""
        services = self._services
        age = None if self._checked_at is None else self._clock() - self._checked_at
        if age is None or age > self.interval * STALE_ROUNDS + CHECK_TIMEOUT_SECONDS:
            error = "not checked yet" if age is None else f"not checked for {age:.0f} s"
            services = {name: ServiceCheck(status="down", required=required, latency_ms=0.0, error=error)
                        for name, (_, required) in self._checks.items()}  # fmt: skip
        if any(s.status == "down" and s.required for s in services.values()):
            return HealthBody(status="unhealthy", services=services), 503
        overall = "degraded" if any(s.status == "down" for s in services.values()) else "healthy"
        return HealthBody(status=overall, services=services), 200


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


class StandardChecks:
    """PostgreSQL (required: jobs live there), and Redis, Kafka and the object store (each degrades the
    service), checked on clients kept from one check to the next; ``aclose()`` closes them."""

    def __init__(self, engine: Engine, redis: RedisSettings, kafka: KafkaSettings, s3: S3Settings) -> None:
        self._engine, self._kafka = engine, kafka
        self._redis = redis_client(redis)
        self._s3 = s3_client(s3, timeout_seconds=CHECK_TIMEOUT_SECONDS, retries=0)
        self._admin: AIOKafkaAdminClient | None = None

    def checks(self) -> dict[str, tuple[HealthCheck, bool]]:
        return {"postgres": (self._engine.ping, True), "redis": (self._redis_up, False),
                "kafka": (self._kafka_up, False), "minio": (self._object_store_up, False)}  # fmt: skip

    async def _redis_up(self) -> None:
        await self._redis.ping()

    async def _kafka_up(self) -> None:
        """One admin client, started on the first check; dropped after a failure and started again next time."""
        try:
            if self._admin is None:
                self._admin = AIOKafkaAdminClient(bootstrap_servers=self._kafka.bootstrap_servers,
                                                  request_timeout_ms=int(CHECK_TIMEOUT_SECONDS * 1000))  # fmt: skip
                await self._admin.start()
            await self._admin.describe_cluster()
        except BaseException:
            await self._drop_admin()
            raise

    async def _object_store_up(self) -> None:
        await asyncio.to_thread(self._s3.list_buckets)

    async def _drop_admin(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            with contextlib.suppress(Exception):
                await admin.close()

    async def aclose(self) -> None:
        await self._drop_admin()
        await self._redis.aclose()
