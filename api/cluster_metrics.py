"""Whole-system gauges (queue depth, backlog age, live workers, open dead letters), refreshed on an interval.

Served by the API process, so a dashboard needs one scrape for the state of the queue. Every figure
comes from a cheap query: partial indexes over live jobs and open dead letters, never history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Gauge

from conveyor.db.records import JobStatus
from conveyor.pipeline.engine import Engine
from conveyor.pipeline.lifecycle.periodic import every

log = logging.getLogger(__name__)

LIVE_STATUSES = (JobStatus.BLOCKED, JobStatus.PENDING, JobStatus.RUNNING)


class ClusterMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.queue_depth = Gauge(
            "conveyor_queue_depth_jobs", "Live jobs by status (BLOCKED, PENDING, RUNNING) and type.",
            ["status", "job_type"], registry=registry,
        )  # fmt: skip
        self.oldest_ready = Gauge(
            "conveyor_queue_oldest_ready_age_seconds", "How long the oldest ready job of each type has waited.",
            ["job_type"], registry=registry,
        )  # fmt: skip
        self.workers_alive = Gauge("conveyor_workers_alive", "Workers ACTIVE or DRAINING.", registry=registry)
        self.heartbeat_age = Gauge(
            "conveyor_worker_heartbeat_age_seconds", "Age of the stalest heartbeat among live workers.",
            registry=registry,
        )  # fmt: skip
        self.dead_letters_open = Gauge(
            "conveyor_dead_letters_open", "Dead letters not replayed yet.", registry=registry
        )
        self.last_sweep = Gauge(
            "conveyor_reconcile_last_complete_sweep_timestamp_seconds",
            "When the last complete reconcile sweep of the bucket finished (Unix time; 0 before the first).",
            ["bucket"], registry=registry,
        )  # fmt: skip
        labels = ["scope", "name"]
        self.flow_running = Gauge(
            "conveyor_flow_running_jobs", "RUNNING jobs of each limited concurrency key or job type.",
            labels, registry=registry,
        )  # fmt: skip
        self.flow_max_running = Gauge(
            "conveyor_flow_max_running_jobs", "The cap of each capped concurrency key or job type.",
            labels, registry=registry,
        )  # fmt: skip
        self.flow_ready = Gauge(
            "conveyor_flow_ready_jobs",
            "Ready PENDING jobs of each limited key or job type: held back while its running jobs are at the cap.",
            labels, registry=registry,
        )  # fmt: skip
        self.flow_oldest_ready = Gauge(
            "conveyor_flow_oldest_ready_age_seconds", "How long the oldest ready job of each limited scope has waited.",
            labels, registry=registry,
        )  # fmt: skip
        self.running_past_lease = Gauge(
            "conveyor_jobs_running_past_lease", "RUNNING jobs whose lease already lapsed (rescue pending).",
            registry=registry,
        )  # fmt: skip


class ClusterMetricsRefresher:
    """``run_once()`` reads the figures once; ``run()`` repeats every ``interval_seconds``."""

    def __init__(
        self, engine: Engine, metrics: ClusterMetrics, interval_seconds: float = 5.0, *, buckets: Sequence[str] = ()
    ) -> None:
        """``buckets``: those the reconciler sweeps, each with the time of its last complete sweep."""
        self.engine, self.metrics, self.interval, self.buckets = engine, metrics, interval_seconds, list(buckets)
        # Job types seen so far: their series stay, at 0, once their queue empties (no gaps on the dashboard).
        self._job_types: set[str] = set()
        self._scopes: set[tuple[str, str]] = set()

    async def run_once(self) -> None:
        m = self.metrics
        engine = self.engine
        depth = await engine.stats.depth()
        alive, heartbeat_age = await engine.workers.liveness()
        open_letters = await engine.objects.open_dead_letters()
        past_lease = await engine.stats.running_past_lease()
        self._job_types |= {d.job_type for d in depth}
        counts = {(d.status, d.job_type): d.jobs for d in depth}
        oldest = {d.job_type: d.oldest_ready_seconds for d in depth if d.oldest_ready_seconds is not None}
        for job_type in self._job_types:
            for status in LIVE_STATUSES:
                m.queue_depth.labels(status, job_type).set(counts.get((status, job_type), 0))
            m.oldest_ready.labels(job_type).set(oldest.get(job_type, 0.0))
        m.workers_alive.set(alive)
        m.heartbeat_age.set(heartbeat_age)
        m.dead_letters_open.set(open_letters)
        m.running_past_lease.set(past_lease)
        await self._sweeps()
        await self._flow()

    async def _flow(self) -> None:
        """Each limited scope's RUNNING jobs against its cap and the ready jobs waiting; a cleared one's go."""
        m, rows = self.metrics, await self.engine.flow.all()
        gauges = (m.flow_running, m.flow_max_running, m.flow_ready, m.flow_oldest_ready)
        for gone in self._scopes - {(row.scope.value, row.name) for row in rows}:
            for gauge in gauges:
                with contextlib.suppress(KeyError):  # an uncapped scope never had a max_running series
                    gauge.remove(*gone)
        self._scopes = set()
        for row in rows:
            labels = (row.scope.value, row.name)
            self._scopes.add(labels)
            m.flow_running.labels(*labels).set(row.running)
            m.flow_ready.labels(*labels).set(row.ready)
            m.flow_oldest_ready.labels(*labels).set(row.oldest_ready_seconds)
            if row.max_running is not None:
                m.flow_max_running.labels(*labels).set(row.max_running)

    async def _sweeps(self) -> None:
        """Per bucket, its latest complete sweep (of any prefix): read from PostgreSQL, whichever process led."""
        finished: dict[str, float] = dict.fromkeys(self.buckets, 0.0)
        for (bucket, _), sweep in (await self.engine.sweeps.last_completed(self.buckets)).items():
            if sweep.finished_at is not None:
                finished[bucket] = max(finished[bucket], sweep.finished_at.timestamp())
        for bucket, at in finished.items():
            self.metrics.last_sweep.labels(bucket).set(at)

    async def run(self, stop: asyncio.Event) -> None:
        await every(self.interval, self.run_once, stop, name="cluster metrics")
