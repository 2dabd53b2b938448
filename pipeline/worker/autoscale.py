"""Autoscaling worker processes: more when the ready backlog per process stays high, fewer when idle.

``decide()`` is pure; :class:`Autoscaler` applies it: ``run_once()`` reads the backlog (from the cheap
depth query), decides, and starts or retires one process. A retired process gets SIGTERM and shuts down
gracefully (its running jobs finish or go back unrun).
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from conveyor.pipeline.engine import Engine
from conveyor.pipeline.lifecycle.periodic import every
from conveyor.pipeline.lifecycle.processes import ProcessSupervisor
from conveyor.pipeline.worker.settings import WorkerSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Bounds:
    minimum: int
    maximum: int

    @classmethod
    def parse(cls, text: str) -> Bounds:
        """``MIN:MAX``, e.g. ``1:4``."""
        low, sep, high = text.partition(":")
        if not sep or not low.isdigit() or not high.isdigit() or not 1 <= int(low) <= int(high):
            raise ValueError(f"--autoscale takes MIN:MAX with 1 <= MIN <= MAX (got {text!r})")
        return cls(int(low), int(high))


@dataclass
class Pressure:
    """Consecutive checks with a backlog above the threshold, and with no backlog at all."""

    busy: int = 0
    idle: int = 0


def decide(backlog: int, processes: int, pressure: Pressure, bounds: Bounds, per_process: int, patience: int) -> int:
    """+1, -1 or 0 processes. ``pressure`` is updated in place with this observation."""
    pressure.busy = pressure.busy + 1 if backlog > per_process * processes else 0
    pressure.idle = pressure.idle + 1 if backlog == 0 else 0
    if processes < bounds.minimum:
        return 1
    if pressure.busy >= patience and processes < bounds.maximum:
        pressure.busy = 0
        return 1
    if pressure.idle >= patience and processes > bounds.minimum:
        pressure.idle = 0
        return -1
    return 0


class AutoscaleMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.decisions = Counter(
            "conveyor_autoscaler_decisions_total",
            "Worker processes added or retired.",
            ["direction"],
            registry=registry,
        )
        self.processes = Gauge("conveyor_autoscaler_processes", "Worker processes supervised.", registry=registry)
        self.backlog = Gauge(
            "conveyor_autoscaler_ready_backlog_jobs", "Ready jobs of the supervised types.", registry=registry
        )


class Autoscaler:
    """Supervises worker processes made by ``spawn()`` within ``bounds``; one that dies is restarted."""

    def __init__(
        self,
        engine: Engine,
        settings: WorkerSettings,
        bounds: Bounds,
        spawn: Callable[[], subprocess.Popen[bytes]],
        metrics: AutoscaleMetrics,
        job_types: Sequence[str] = (),
    ) -> None:
        self.engine, self.settings, self.bounds, self.spawn, self.metrics = engine, settings, bounds, spawn, metrics
        self.job_types = set(job_types)
        self.supervisor = ProcessSupervisor()
        self.pressure = Pressure()
        self._started = 0

    @property
    def processes(self) -> list[subprocess.Popen[bytes]]:
        return self.supervisor.processes

    async def ready_backlog(self) -> int:
        return await self.engine.stats.ready_backlog(self.job_types)

    async def run_once(self) -> int:
        """One observation and at most one change; returns the change (+1, -1 or 0)."""
        self.supervisor.check_once()  # a worker process that died comes back (after a backoff)
        backlog = await self.ready_backlog()
        running = len(self.supervisor)
        change = decide(backlog, running, self.pressure, self.bounds,
                        self.settings.autoscale_backlog_per_process, self.settings.autoscale_patience)  # fmt: skip
        if change > 0:
            self._started += 1
            self.supervisor.add(f"worker-{self._started}", self.spawn)
            log.info("autoscale: backlog %d over %d process(es): started one (now %d)", backlog, running,
                     len(self.supervisor))  # fmt: skip
            self.metrics.decisions.labels("up").inc()
        elif change < 0:
            retired = self.supervisor.retire()
            assert retired is not None
            log.info("autoscale: idle: retiring %s gracefully (now %d)", retired.name, len(self.supervisor))
            self.metrics.decisions.labels("down").inc()
        self.metrics.processes.set(len(self.supervisor))
        self.metrics.backlog.set(backlog)
        return change

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await every(self.settings.autoscale_interval_seconds, self.run_once, stop, name="autoscale")
        finally:
            await self.stop_all()

    async def stop_all(self) -> None:
        """SIGTERM every process and wait for their graceful exits."""
        await self.supervisor.stop_all(grace_seconds=self.settings.shutdown_grace_seconds + 30)
