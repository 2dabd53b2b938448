"""The maintenance leader: one process of the cluster rescues lapsed jobs, applies retention and keeps the
busy tables' statistics current.

Every process that moves jobs (each worker, the API) campaigns for one PostgreSQL advisory lock; the one
holding it runs the rescuer and retention when they are due. The lock lives on the leader's own
connection: when the leader dies, PostgreSQL drops the lock with the connection, and another process
wins the next campaign, within ``campaign_interval_seconds``.
"""

from __future__ import annotations

import asyncio
import time

from conveyor.pipeline.engine import Engine
from conveyor.pipeline.engine.settings import EngineSettings
from conveyor.pipeline.lifecycle.periodic import every
from conveyor.pipeline.maintenance.metrics import MaintenanceMetrics
from conveyor.pipeline.maintenance.rescuer import Rescuer
from conveyor.pipeline.maintenance.retention import Pruner
from conveyor.pipeline.maintenance.statistics import StatisticsKeeper

LEADERSHIP = "maintenance"


class MaintenanceLeader:
    """``run_once()`` campaigns and, when leading, runs what is due; ``run()`` repeats it."""

    def __init__(self, engine: Engine, settings: EngineSettings, metrics: MaintenanceMetrics) -> None:
        self.settings, self.metrics = settings, metrics
        self.leadership = engine.maintenance.leadership(LEADERSHIP)
        self.rescuer = Rescuer(engine, interval_seconds=settings.rescue_interval_seconds,
                               worker_lost_after_seconds=settings.worker_lost_after_seconds,
                               on_rescue=metrics.rescued)  # fmt: skip
        self.pruner = Pruner(engine, settings.retention)
        self.statistics = StatisticsKeeper(engine, on_refresh=metrics.analyzed)
        self._rescue_due = self._prune_due = 0.0

    @property
    def tick_seconds(self) -> float:
        return min(self.settings.leader_campaign_interval_seconds, self.settings.rescue_interval_seconds)

    async def run_once(self) -> bool:
        """Campaign; when leading, rescue and prune if due, and measure tables that outgrew their statistics.
        Whether this process leads."""
        leading = await self.leadership.campaign()
        self.metrics.leader.set(1 if leading else 0)
        if leading:
            await self._maintain(time.monotonic())
        return leading

    async def _maintain(self, now: float) -> None:
        if now >= self._rescue_due:
            full = self.rescuer.full_batch(await self.rescuer.run_once())
            self._rescue_due = now if full else now + self.settings.rescue_interval_seconds
        if now >= self._prune_due:
            full = self.pruner.full_batch(await self.pruner.run_once())
            self._prune_due = now if full else now + self.settings.retention.interval_seconds
        await self.statistics.run_once()  # a look at the catalog: every tick

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await every(self.tick_seconds, self.run_once, stop, name="maintenance", jitter=0.2)
        finally:
            self.metrics.leader.set(0)
            await self.leadership.resign()
