"""Retention: finished jobs, old health samples and long-gone workers are deleted in small batches.

A small ``jobs`` table keeps the claim fast and autovacuum cheap; queues that kept history forever are
where their users' incidents came from. It runs on the maintenance leader.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from conveyor.pipeline.engine import Engine
from conveyor.pipeline.engine.maintenance import PruneBefore, PruneReport
from conveyor.pipeline.engine.settings import RetentionSettings
from conveyor.pipeline.lifecycle.periodic import every

log = logging.getLogger(__name__)


class Pruner:
    """``run_once()`` deletes one batch of each kind; ``run()`` repeats until each is below a batch."""

    def __init__(self, engine: Engine, settings: RetentionSettings) -> None:
        self.engine, self.settings = engine, settings

    async def run_once(self) -> PruneReport:
        now, s = self.engine.now(), self.settings
        report = await self.engine.maintenance.prune(
            PruneBefore(
                finished=now - timedelta(seconds=s.completed_after_seconds),
                failed=now - timedelta(seconds=s.failed_after_seconds),
                health_logs=now - timedelta(seconds=s.health_logs_after_seconds),
                workers=now - timedelta(seconds=s.stopped_workers_after_seconds),
                limit=s.batch_size,
                events=now - timedelta(seconds=s.events_after_seconds) if s.events_after_seconds else None,
                sweeps=now - timedelta(seconds=s.sweeps_after_seconds),
                flow_limits=now - timedelta(seconds=s.idle_key_limits_after_seconds),
            )
        )
        if any(_counts(report)):
            log.info("pruned %d jobs, %d health samples, %d workers, %d events, %d sweeps, %d tombstones, "
                     "%d idle key limits", *_counts(report))  # fmt: skip
        return report

    def full_batch(self, report: PruneReport) -> bool:
        return max(_counts(report)) >= self.settings.batch_size

    async def run(self, stop: asyncio.Event) -> None:
        await every(self.settings.interval_seconds, self.run_once, stop, name="retention", jitter=0.2,
                    again_now=self.full_batch)  # fmt: skip


def _counts(report: PruneReport) -> tuple[int, ...]:
    r = report
    return r.jobs, r.health_logs, r.workers, r.events, r.sweeps, r.tombstones, r.flow_limits
