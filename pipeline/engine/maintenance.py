"""The engine's maintenance verbs: rescuing jobs of lost workers, retention, and the leadership lock.

They run on one elected process of the cluster (:mod:`conveyor.pipeline.maintenance`), but each is safe
to run anywhere and at once: the statements skip rows another rescuer has locked.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from conveyor.db import events as event_queries
from conveyor.db import flow as flow_queries
from conveyor.db import jobs as job_queries
from conveyor.db import leadership
from conveyor.db import statistics as statistics_queries
from conveyor.db import sweeps as sweep_queries
from conveyor.db import uploads as upload_queries
from conveyor.db import workers as worker_queries
from conveyor.db.connection import Connection, Pool, acquire, give_back, hold
from conveyor.db.errors import ServiceUnavailable
from conveyor.db.records import JobStatus

log = logging.getLogger(__name__)

Wake = Callable[[list[str]], None]


@dataclass(frozen=True)
class RescueReport:
    requeued: int
    failed: int
    cancelled_descendants: int
    #: Flow limits whose RUNNING count had drifted and was mended.
    counts_mended: int = 0


@dataclass(frozen=True)
class PruneReport:
    jobs: int
    health_logs: int
    workers: int
    events: int = 0
    sweeps: int = 0
    tombstones: int = 0
    flow_limits: int = 0


@dataclass(frozen=True)
class StatisticsReport:
    """The busy tables that had outgrown their statistics and were analyzed, and those still outgrown after."""

    analyzed: tuple[str, ...] = ()
    still_outgrown: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class PruneBefore:
    """What retention deletes: rows finished (or silent) before these times, at most ``limit`` of each."""

    finished: datetime
    failed: datetime
    health_logs: datetime
    workers: datetime
    limit: int
    #: None: recorded events (and the tombstones of removed objects) are kept forever.
    events: datetime | None = None
    sweeps: datetime | None = None
    #: Key limits set by pipelines or API calls, whose key has been idle since then.
    flow_limits: datetime | None = None


class MaintenanceVerbs:
    """``engine.maintenance``."""

    def __init__(self, pool: Pool, *, now: Callable[[], datetime | None], wake: Wake) -> None:
        self._pool, self._now, self._wake = pool, now, wake

    async def rescue(self, *, limit: int, worker_lost_after_seconds: float | None) -> RescueReport:
        """Declare silent workers LOST (their leases end now), then rescue up to ``limit`` lapsed jobs.

        A rescued job goes back to PENDING with a ``worker_lost`` error, or to FAILED (cancelling its
        descendants) when that was its last attempt. One transaction; wake-ups after it commits.
        """
        async with acquire(self._pool) as conn, conn.transaction():
            if worker_lost_after_seconds is not None:
                await self._expire_lost_workers(conn, worker_lost_after_seconds)
            rescued = await job_queries.rescue_expired(conn, limit=limit, now=self._now())
            failed = [r.id for r in rescued if r.status is JobStatus.FAILED]
            cancelled = await job_queries.cancel_descendants(conn, failed, now=self._now()) if failed else set()
        requeued = [r for r in rescued if r.status is JobStatus.PENDING]
        if rescued:
            log.warning("rescued %d job(s) of lost workers: %d requeued, %d failed", len(rescued), len(requeued),
                        len(failed))  # fmt: skip
        self._wake(sorted({r.job_type for r in requeued}))
        return RescueReport(len(requeued), len(failed), len(cancelled))

    async def _expire_lost_workers(self, conn: Connection, silent_for_seconds: float) -> None:
        lost = await worker_queries.mark_lost(conn, silent_for_seconds=silent_for_seconds)
        if lost:
            log.warning("workers %s stopped heartbeating: their jobs are rescued now", [str(w) for w in lost])
            await job_queries.expire_leases_of_workers(conn, lost, now=self._now())

    async def prune(self, before: PruneBefore) -> PruneReport:
        """Delete one batch each of old finished jobs, health samples, long-gone workers, and (when set)
        recorded events with removed objects' tombstones, and finished sweeps."""
        async with acquire(self._pool) as conn:
            jobs = await job_queries.prune(
                conn, finished_before=before.finished, failed_before=before.failed, limit=before.limit
            )
            health = await worker_queries.prune_health(conn, before=before.health_logs, limit=before.limit)
            workers = await worker_queries.prune(conn, before=before.workers, limit=before.limit)
            events = tombstones = sweeps = 0
            if before.events is not None:
                events = await event_queries.prune(conn, before=before.events, limit=before.limit)
                tombstones = await upload_queries.prune_removed(conn, before=before.events, limit=before.limit)
            if before.sweeps is not None:
                sweeps = await sweep_queries.prune(conn, before=before.sweeps, limit=before.limit)
            limits = 0
            if before.flow_limits is not None:
                limits = await flow_queries.prune(conn, idle_before=before.flow_limits)
        return PruneReport(jobs, health, workers, events, sweeps, tombstones, limits)

    async def refresh_statistics(self, *, slack_pages: int) -> StatisticsReport:
        """ANALYZE the busy tables when any outgrew twice what PostgreSQL last measured of it (plus
        ``slack_pages``); which had, and which still have after it (ANALYZE skips a table it may not read)."""
        async with acquire(self._pool) as conn:
            grown = await statistics_queries.outgrown(conn, slack_pages=slack_pages)
            if not grown:
                return StatisticsReport()
            await statistics_queries.refresh(conn)
            still = await statistics_queries.outgrown(conn, slack_pages=slack_pages)
        return StatisticsReport(tuple(grown), tuple(still))

    def leadership(self, name: str) -> Leadership:
        """The lock that elects the one process doing ``name`` (e.g. "maintenance") in this database."""
        return Leadership(self._pool, name)


class Leadership:
    """A session advisory lock on a pool connection of its own, held for as long as this process leads."""

    def __init__(self, pool: Pool, name: str) -> None:
        self._pool, self.name = pool, name
        # A stable 63-bit key from the name: advisory locks take a bigint.
        self.key = zlib.crc32(f"conveyor:{name}".encode()) | (0x434F4E56 << 32)
        self._conn: Connection | None = None

    @property
    def is_leader(self) -> bool:
        return self._conn is not None

    async def campaign(self) -> bool:
        """Lead if nobody does; while leading, prove the session is still alive. Whether this process leads."""
        if self._conn is not None:
            return await self._still_leading(self._conn)
        conn = await hold(self._pool)
        try:
            won = await leadership.try_lock(conn, self.key)
        except BaseException:
            await give_back(self._pool, conn)
            raise
        if not won:
            await give_back(self._pool, conn)
            return False
        self._conn = conn
        log.info("this process now leads %s", self.name)
        return True

    async def _still_leading(self, conn: Connection) -> bool:
        try:
            await leadership.alive(conn)
        except ServiceUnavailable as exc:
            log.warning("lost the %s leadership with its connection (%s)", self.name, exc)
            await self._let_go()
            return False
        return True

    async def resign(self) -> None:
        """Stop leading (the lock goes with the session reset as the connection returns to the pool)."""
        if self._conn is not None:
            log.info("resigning the %s leadership", self.name)
            await self._let_go()

    async def _let_go(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await give_back(self._pool, conn)
            except ServiceUnavailable as exc:
                log.debug("leadership connection already gone: %s", exc)
