"""The rescuer: jobs whose lease lapsed (worker crashed, hung or was partitioned away) run again.

A lapsed job goes back to PENDING with a ``worker_lost`` error, or to FAILED when that was its last
attempt, so a job that kills its worker every time ends FAILED instead of looping forever. It runs on
the maintenance leader; the statement is safe to run on several processes at once all the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

from conveyor.pipeline.engine import Engine
from conveyor.pipeline.engine.maintenance import RescueReport
from conveyor.pipeline.lifecycle.periodic import every

BATCH_SIZE = 500


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
        """Declare silent workers LOST (their leases end now), rescue one batch of lapsed jobs, then mend
        any flow limit's RUNNING count that drifted (a rescued job's slot is freed by the rescue itself)."""
        report = await self.engine.maintenance.rescue(
            limit=self.batch_size, worker_lost_after_seconds=self.worker_lost_after
        )
        report = replace(report, counts_mended=len(await self.engine.flow.recount()))
        self.on_rescue(report)
        return report

    def full_batch(self, report: RescueReport) -> bool:
        return report.requeued + report.failed >= self.batch_size

    async def run(self, stop: asyncio.Event) -> None:
        await every(self.interval, self.run_once, stop, name="rescuer", jitter=0.2, again_now=self.full_batch)
