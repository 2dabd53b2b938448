"""The engine's figures about the whole cluster's queue: depth, backlog, leases past due."""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime

from conveyor.db import jobs as job_queries
from conveyor.db.connection import Pool, acquire
from conveyor.db.records import Depth, PipelineRun


class QueueStats:
    """``engine.stats``: cheap counts over live jobs only (a partial index), safe to poll."""

    def __init__(self, pool: Pool, *, now: Callable[[], datetime | None]) -> None:
        self._pool, self._now = pool, now

    async def depth(self) -> list[Depth]:
        """Live jobs by status and type, with the age of the oldest ready one."""
        async with acquire(self._pool) as conn:
            return await job_queries.depth(conn, now=self._now())

    async def ready_backlog(self, job_types: Collection[str] = ()) -> int:
        """Ready (PENDING and due) jobs of ``job_types`` (every type when empty): what autoscaling scales on."""
        async with acquire(self._pool) as conn:
            return await job_queries.ready_backlog(conn, job_types)

    async def running(self, job_types: Collection[str] = ()) -> int:
        """RUNNING jobs of ``job_types`` (every type when empty), claimed ahead or started."""
        async with acquire(self._pool) as conn:
            return await job_queries.running_count(conn, job_types)

    async def running_past_lease(self) -> int:
        """RUNNING jobs whose lease already lapsed: a rescue is due."""
        async with acquire(self._pool) as conn:
            return await job_queries.running_past_lease(conn)

    async def finished_pipeline_runs(self, *, after: datetime, until: datetime) -> list[PipelineRun]:
        """Pipeline runs of recorded uploads whose last job finished in (``after``, ``until``], oldest first."""
        async with acquire(self._pool) as conn:
            return await job_queries.finished_pipeline_runs(conn, after=after, until=until)
