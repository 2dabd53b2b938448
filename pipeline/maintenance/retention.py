"""Retention: finished jobs, old health samples and long-gone workers are deleted in small batches.

A small ``jobs`` table keeps the claim fast and autovacuum cheap; queue queues that kept history
forever are where their users' incidents came from.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from datetime import timedelta

from conveyor.db import jobs as job_queries
from conveyor.db import workers as worker_queries
from conveyor.db.connection import acquire
from conveyor.db.errors import ServiceUnavailable
from conveyor.pipeline.engine.engine import Engine
from conveyor.pipeline.engine.settings import RetentionSettings
from conveyor.pipeline.lifecycle.waiting import wait_for_event

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PruneReport:
    jobs: int
    health_logs: int
    workers: int


class Pruner:
    """``run_once()`` deletes one batch of each kind; ``run()`` repeats until each is below a batch."""

    def __init__(self, engine: Engine, settings: RetentionSettings) -> None:
        self.engine, self.settings = engine, settings

    async def run_once(self) -> PruneReport:
        now, s = self.engine.now(), self.settings
        async with acquire(self.engine.pool) as conn:
            jobs = await job_queries.prune(
                conn,
                finished_before=now - timedelta(seconds=s.completed_after_seconds),
                failed_before=now - timedelta(seconds=s.failed_after_seconds),
                limit=s.batch_size,
            )
            health = await worker_queries.prune_health(
                conn, before=now - timedelta(seconds=s.health_logs_after_seconds), limit=s.batch_size
            )
            workers = await worker_queries.prune(
                conn, before=now - timedelta(seconds=s.stopped_workers_after_seconds), limit=s.batch_size
            )
        if jobs or health or workers:
            log.info("pruned %d jobs, %d health samples, %d workers", jobs, health, workers)
        return PruneReport(jobs, health, workers)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                report = await self.run_once()
            except ServiceUnavailable as exc:
                log.warning("retention: %s; retrying", exc)
            else:
                if max(report.jobs, report.health_logs, report.workers) >= self.settings.batch_size:
                    continue
            await wait_for_event(stop, self.settings.interval_seconds * random.uniform(0.8, 1.2))
