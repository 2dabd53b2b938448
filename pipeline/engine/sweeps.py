"""The engine's door to bucket listings: watched buckets, sweeps and backfills, and what is recorded of
a listed page (the read side; a page's writes share an :class:`EngineTransaction` with its jobs)."""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.db import sweeps as sweep_queries
from conveyor.db import uploads as upload_queries
from conveyor.db.connection import Pool, acquire
from conveyor.db.records import (
    CompletedSweep,
    ListedObject,
    NewSweep,
    RecordedUpload,
    SweepKind,
    SweepRow,
    SweepStatus,
    WatchedBucket,
)


class SweepRecords:
    """``engine.sweeps``: listings of buckets, their leases, cursors and progress."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def watch(self, buckets: Sequence[str]) -> list[WatchedBucket]:
        """Watch ``buckets`` from now on (those already watched keep their start); all of them."""
        async with acquire(self._pool) as conn:
            return await sweep_queries.watch(conn, buckets)

    async def request(self, buckets: Sequence[str] = (), *, reason: str) -> list[str]:
        """Ask the reconciler for an early sweep of ``buckets`` (every watched one when empty)."""
        async with acquire(self._pool) as conn:
            return await sweep_queries.request_sweep(conn, buckets, reason=reason)

    async def recorded(
        self, bucket: str, listed: Sequence[ListedObject], *, tolerance_seconds: float
    ) -> list[RecordedUpload]:
        """What is recorded of each listed object, in order: one statement per page."""
        async with acquire(self._pool) as conn:
            return await upload_queries.for_listing(conn, bucket, listed, tolerance_seconds=tolerance_seconds)

    async def create(self, sweep: NewSweep) -> SweepRow:
        async with acquire(self._pool) as conn:
            return await sweep_queries.create(conn, sweep)

    async def create_or_resume(self, sweep: NewSweep) -> SweepRow:
        """The unfinished sweep with these parameters (a killed run resumes it), else a new one."""
        async with acquire(self._pool) as conn, conn.transaction():
            found = await sweep_queries.find_unfinished(conn, sweep)
            return found if found is not None else await sweep_queries.create(conn, sweep)

    async def claim(self, sweep_id: int, *, owner: str, lease_seconds: float) -> SweepRow | None:
        """Hold the sweep for ``lease_seconds``; None when another live runner holds it, or it ended."""
        async with acquire(self._pool) as conn:
            return await sweep_queries.claim(conn, sweep_id, owner=owner, lease_seconds=lease_seconds)

    async def next_claimable(self, kind: SweepKind, *, owner: str) -> int | None:
        """The oldest unfinished sweep of ``kind`` that ``owner`` may run now (nobody else holds it)."""
        async with acquire(self._pool) as conn:
            return await sweep_queries.next_claimable(conn, kind, owner=owner)

    async def count(
        self, sweep_id: int, *, owner: str, cursor: str | None, counted: int, done: bool, lease_seconds: float
    ) -> SweepRow | None:
        """Record a backfill's counting progress (its total when ``done``); None when ``owner`` lost it."""
        async with acquire(self._pool) as conn:
            return await sweep_queries.count(conn, sweep_id, owner=owner, cursor=cursor, counted=counted, done=done,
                                             lease_seconds=lease_seconds)  # fmt: skip

    async def finish(
        self, sweep_id: int, *, owner: str, status: SweepStatus, error: str | None = None
    ) -> SweepRow | None:
        async with acquire(self._pool) as conn:
            return await sweep_queries.finish(conn, sweep_id, owner=owner, status=status, error=error)

    async def get(self, sweep_id: int) -> SweepRow | None:
        async with acquire(self._pool) as conn:
            return await sweep_queries.get(conn, sweep_id)

    async def list(self, kind: SweepKind, *, before: int | None = None, limit: int = 50) -> list[SweepRow]:
        async with acquire(self._pool) as conn:
            return await sweep_queries.list_sweeps(conn, kind, before=before, limit=limit)

    async def last_completed(self, buckets: Sequence[str]) -> dict[tuple[str, str], CompletedSweep]:
        """Per (bucket, prefix), the last complete reconcile sweep's start and finish."""
        async with acquire(self._pool) as conn:
            return await sweep_queries.last_completed(conn, buckets)
