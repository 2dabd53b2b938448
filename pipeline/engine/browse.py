"""The engine's door to what operators browse: pages of jobs and objects, running jobs, traffic per minute.

Read-only, and paged by index order (see ``db/queries/browse.sql``): safe to call with millions of jobs.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from conveyor.db import browse as browse_queries
from conveyor.db.connection import Pool, acquire
from conveyor.db.records import JobBrief, JobRow, JobSearch, MinuteCounts, ObjectSummary


class Browser:
    """``engine.browse``: what the operator's console reads."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def jobs(self, search: JobSearch) -> list[JobRow]:
        """A page of jobs matching ``search``, in its order (dependency ids are not filled in)."""
        async with acquire(self._pool) as conn:
            return await browse_queries.search_jobs(conn, search)

    async def count_jobs(self, search: JobSearch, *, at_most: int) -> int:
        """How many jobs match ``search`` (its limit aside), counting no further than ``at_most``."""
        async with acquire(self._pool) as conn:
            return await browse_queries.count_jobs(conn, search, at_most=at_most)

    async def briefs(self, ids: Sequence[uuid.UUID]) -> list[JobBrief]:
        """Jobs ``ids`` in a line each (a job's parents and children); unknown ids are left out."""
        if not ids:
            return []
        async with acquire(self._pool) as conn:
            return await browse_queries.briefs(conn, ids)

    async def running_on(self, worker_ids: Sequence[uuid.UUID], *, limit: int = 1000) -> list[JobBrief]:
        """The jobs ``worker_ids`` run now, longest running first."""
        async with acquire(self._pool) as conn:
            return await browse_queries.running_on(conn, worker_ids, limit=limit)

    async def objects(
        self, bucket: str, prefix: str, *, after: tuple[str, str] | None = None, limit: int = 50
    ) -> list[ObjectSummary]:
        """``bucket``'s recorded uploads whose key starts with ``prefix``, in byte order after ``after``."""
        async with acquire(self._pool) as conn:
            return await browse_queries.search_objects(conn, bucket, prefix, after=after, limit=limit)

    async def throughput(self, since: datetime) -> list[MinuteCounts]:
        """Uploads received, jobs finished and jobs failed per minute since ``since``."""
        async with acquire(self._pool) as conn:
            return await browse_queries.throughput(conn, since)

    async def swept_missing(self, since: datetime) -> int:
        """Objects reconciliation found unnotified in the sweeps finished since ``since``."""
        async with acquire(self._pool) as conn:
            return await browse_queries.swept_missing(conn, since)
