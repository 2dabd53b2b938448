"""Autoscaling worker processes: more when the ready backlog per process stays high, fewer when idle.

``decide()`` is pure; :class:`Autoscaler` applies it: ``run_once()`` reads the load (ready and running
jobs, from the partial index of live jobs), decides, and starts or retires one process. A retired process
gets SIGTERM and shuts down gracefully (its running jobs finish or go back unrun).

Idle is more than "nothing ready": under a steady load, jobs are claimed the moment they are ready, so
most checks see no backlog while every process is busy. A process is retired only when nothing is ready
and the jobs running would fill at most half the slots of the processes left; otherwise the next checks
would find the backlog again and start a process back (each start costs a new interpreter's imports).
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


#: A process is retired only if the jobs running would fill at most this share of the slots left.
RETIRE_AT_MOST_BUSY = 0.5


@dataclass(frozen=True)
class Load:
    """One observation of the supervised job types: jobs ready to claim, and jobs running."""

    ready: int
    running: int


@dataclass
class Pressure:
    """Consecutive checks with a backlog above the threshold, and with one process to spare."""

    busy: int = 0
    idle: int = 0


def decide(load: Load, processes: int, pressure: Pressure, bounds: Bounds, settings: WorkerSettings) -> int:
    """+1, -1 or 0 processes. ``pressure`` is updated in place with this observation."""
    pressure.busy = pressure.busy + 1 if load.ready > settings.autoscale_backlog_per_process * processes else 0
    pressure.idle = pressure.idle + 1 if _one_to_spare(load, processes, settings.concurrency) else 0
    if processes < bounds.minimum:
        return 1
    if pressure.busy >= settings.autoscale_patience and processes < bounds.maximum:
        pressure.busy = 0
        return 1
    if pressure.idle >= settings.autoscale_patience and processes > bounds.minimum:
        pressure.idle = 0
        return -1
    return 0


def _one_to_spare(load: Load, processes: int, slots: int) -> bool:
    """Nothing waits, and one process fewer would still be at most half busy."""
    return load.ready == 0 and load.running <= RETIRE_AT_MOST_BUSY * slots * (processes - 1)


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
        self.running = Gauge(
            "conveyor_autoscaler_running_jobs", "RUNNING jobs of the supervised types.", registry=registry
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

    async def load(self) -> Load:
        stats = self.engine.stats
        return Load(await stats.ready_backlog(self.job_types), await stats.running(self.job_types))

    async def run_once(self) -> int:
        """One observation and at most one change; returns the change (+1, -1 or 0)."""
        self.supervisor.check_once()  # a worker process that died comes back (after a backoff)
        load = await self.load()
        processes = len(self.supervisor)
        change = decide(load, processes, self.pressure, self.bounds, self.settings)
        if change > 0:
            self._started += 1
            self.supervisor.add(f"worker-{self._started}", self.spawn)
            log.info("autoscale: backlog %d over %d process(es): started one (now %d)", load.ready, processes,
                     len(self.supervisor))  # fmt: skip
            self.metrics.decisions.labels("up").inc()
        elif change < 0:
            retired = self.supervisor.retire()
            assert retired is not None
            log.info("autoscale: %d job(s) running, none ready: retiring %s gracefully (now %d)", load.running,
                     retired.name, len(self.supervisor))  # fmt: skip
            self.metrics.decisions.labels("down").inc()
        self.metrics.processes.set(len(self.supervisor))
        self.metrics.backlog.set(load.ready)
        self.metrics.running.set(load.running)
        return change

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await every(self.settings.autoscale_interval_seconds, self.run_once, stop, name="autoscale")
        finally:
            await self.stop_all()

    async def stop_all(self) -> None:
        """SIGTERM every process and wait for their graceful exits."""
        await self.supervisor.stop_all(grace_seconds=self.settings.shutdown_grace_seconds + 30)
