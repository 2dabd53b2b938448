"""The engine's door to the worker registry: registration, heartbeats, health samples and listings."""

from __future__ import annotations

import uuid
from typing import Any

from conveyor.db import workers as worker_queries
from conveyor.db.connection import Pool, acquire
from conveyor.db.records import Liveness, NewWorker, WorkerRow, WorkerStatus


class WorkerRegistry:
    """``engine.workers``: every worker process, Python or HTTP, as the ``workers`` table knows it."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def register(self, worker: NewWorker) -> WorkerRow:
        async with acquire(self._pool) as conn:
            return await worker_queries.register(conn, worker)

    async def heartbeat(
        self, worker_id: uuid.UUID, *, status: WorkerStatus = WorkerStatus.ACTIVE, completed: int = 0, failed: int = 0
    ) -> bool:
        """Record that the worker is alive (adding its finished-job counts); False if it is unknown, STOPPED or LOST."""
        async with acquire(self._pool) as conn:
            return await worker_queries.heartbeat(conn, worker_id, status=status, completed=completed, failed=failed)

    async def log_health(
        self,
        worker_id: uuid.UUID,
        *,
        status: WorkerStatus,
        jobs_in_flight: int,
        rss_bytes: int | None,
        cpu_percent: float | None,
    ) -> None:
        async with acquire(self._pool) as conn:
            await worker_queries.log_health(
                conn, worker_id, status=status, jobs_in_flight=jobs_in_flight, rss_bytes=rss_bytes,
                cpu_percent=cpu_percent,
            )  # fmt: skip

    async def stop(self, worker_id: uuid.UUID) -> bool:
        """The worker shut down gracefully: STOPPED."""
        async with acquire(self._pool) as conn:
            return await worker_queries.stop(conn, worker_id)

    async def get(self, worker_id: uuid.UUID) -> WorkerRow | None:
        async with acquire(self._pool) as conn:
            return await worker_queries.get(conn, worker_id)

    async def all(self, *, include_stopped: bool = False) -> list[WorkerRow]:
        async with acquire(self._pool) as conn:
            return await worker_queries.list_workers(conn, include_stopped=include_stopped)

    async def recent_health(self, worker_id: uuid.UUID, *, limit: int = 20) -> list[dict[str, Any]]:
        async with acquire(self._pool) as conn:
            return await worker_queries.recent_health(conn, worker_id, limit=limit)

    async def liveness(self) -> Liveness:
        async with acquire(self._pool) as conn:
            return await worker_queries.liveness(conn)
