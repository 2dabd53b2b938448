"""The rescuer: jobs whose lease lapsed (worker crashed, hung or was partitioned away) run again.

A lapsed job goes back to PENDING with a ``worker_lost`` error, or to FAILED when that was its last
attempt, so a job that kills its worker every time ends FAILED instead of looping forever. Several
rescuers (one per worker process) can run at once: the statement skips rows another one has locked.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

from conveyor.db import jobs as job_queries
from conveyor.db import workers as worker_queries
from conveyor.db.connection import acquire
from conveyor.db.errors import ServiceUnavailable
from conveyor.db.jobs import JobStatus
from conveyor.pipeline.engine.engine import Engine
from conveyor.pipeline.lifecycle.waiting import wait_for_event

log = logging.getLogger(__name__)

BATCH_SIZE = 500


@dataclass(frozen=True)
class RescueReport:
    requeued: int
    failed: int
    cancelled_descendants: int


class Rescuer:
    """``run_once()`` rescues one batch; ``run()`` repeats it every ``interval_seconds`` (jittered)."""

    def __init__(
        self,
        engine: Engine,
        *,
        interval_seconds: float = 5.0,
        batch_size: int = BATCH_SIZE,
        worker_lost_after_seconds: float | None = None,
        on_rescue: Callable[[RescueReport], None] = lambda report: None,
    ) -> None:
        self.engine, self.interval, self.batch_size = engine, interval_seconds, batch_size
        self.worker_lost_after = worker_lost_after_seconds
        self.on_rescue = on_rescue

    async def run_once(self) -> RescueReport:
        """Declare silent workers LOST (their leases end now), then rescue one batch of lapsed jobs."""
        engine = self.engine
        async with acquire(engine.pool) as conn, conn.transaction():
            if self.worker_lost_after is not None:
                lost = await worker_queries.mark_lost(conn, silent_for_seconds=self.worker_lost_after)
                if lost:
                    log.warning("workers %s stopped heartbeating: their jobs are rescued now", [str(w) for w in lost])
                    await job_queries.expire_leases_of_workers(conn, lost, now=engine.db_now())
            rescued = await job_queries.rescue_expired(conn, limit=self.batch_size, now=engine.db_now())
            failed = [r.id for r in rescued if r.status is JobStatus.FAILED]
            cancelled = await job_queries.cancel_descendants(conn, failed, now=engine.db_now()) if failed else set()
        requeued = [r for r in rescued if r.status is JobStatus.PENDING]
        if rescued:
            log.warning(
                "rescued %d job(s) from lost workers: %d requeued, %d failed", len(rescued), len(requeued), len(failed)
            )
        engine.notify_ready(sorted({r.job_type for r in requeued}))
        report = RescueReport(len(requeued), len(failed), len(cancelled))
        self.on_rescue(report)
        return report

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                report = await self.run_once()
            except ServiceUnavailable as exc:
                log.warning("rescuer: %s; retrying", exc)
            else:
                if report.requeued + report.failed == self.batch_size:
                    continue  # a full batch: there may be more right away
            # Jitter keeps rescuers of many processes from running in lockstep.
            await wait_for_event(stop, self.interval * random.uniform(0.8, 1.2))
