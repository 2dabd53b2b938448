"""Cluster maintenance runs on one elected process; a leader killed with SIGKILL is replaced within seconds."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry

from conveyor.db.records import JobStatus
from conveyor.pipeline.engine import Engine, JobSpec
from conveyor.pipeline.engine.settings import EngineSettings
from conveyor.pipeline.maintenance.leader import MaintenanceLeader
from conveyor.pipeline.maintenance.metrics import MaintenanceMetrics
from tests.integration.api_server import free_port
from tests.integration.conftest import Workers, executions, metric_value, wait_until
from tests.integration.test_worker_processes import create

#: Jobs that grow an empty job table past the statistics keeper's slack (64 pages).
GROWN = 5_000


def leader_gauge(port: int) -> float | None:
    """A worker's ``conveyor_maintenance_leader``, or None while its /metrics does not answer."""
    try:
        return metric_value(port, "conveyor_maintenance_leader")
    except httpx.HTTPError:
        return None


async def gauge_is(port: int, value: float) -> bool:
    return await asyncio.to_thread(leader_gauge, port) == value


def metrics_on(port: int) -> dict[str, str]:
    return {"CONVEYOR_METRICS__ENABLED": "true", "CONVEYOR_METRICS__PORT": str(port)}


async def test_a_killed_leader_is_replaced_and_its_jobs_are_still_rescued(
    engine: Engine, workers: Workers, tmp_path: Path
) -> None:
    log, (first_port, second_port) = tmp_path / "runs.log", (free_port(), free_port())
    first = workers.start("--concurrency", "2", **metrics_on(first_port))
    await wait_until(lambda: gauge_is(first_port, 1), within=30, what="the first worker leading maintenance")
    (job_id,) = await create(engine, 1, "test.sleep_first", first_seconds=3600, seconds=0, log=str(log))
    await wait_until(lambda: _status_is(engine, job_id, JobStatus.RUNNING), within=20, what="the job running")
    second = workers.start("--concurrency", "2", **metrics_on(second_port))
    await wait_until(lambda: gauge_is(second_port, 0), within=30, what="the second worker following")

    os.kill(first.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    await wait_until(lambda: gauge_is(second_port, 1), within=15, what="the second worker taking over")
    took_over_after = time.monotonic() - killed_at
    await wait_until(lambda: _status_is(engine, job_id, JobStatus.COMPLETED), within=30, what="the rescued job done")

    job = await engine.get(uuid.UUID(job_id))
    assert job.attempts == 2 and [e["kind"] for e in job.errors] == ["worker_lost"], job.errors
    starts = [fields[2] for fields in map(str.split, log.read_text().splitlines()) if fields[3] == "start"]
    assert starts == [str(first.pid), str(second.pid)], "run by the leader, then rescued to its successor"
    assert executions(log)[(job_id, "done")] == 1
    assert took_over_after < 10, f"takeover took {took_over_after:.1f}s"


async def _status_is(engine: Engine, job_id: str, status: JobStatus) -> bool:
    return (await engine.get(uuid.UUID(job_id))).status is status


async def test_one_leader_among_campaigners_and_resigning_hands_over(engine: Engine) -> None:
    """In one process, as the API and a worker would: exactly one of three leads; when it resigns, one follows."""
    leaders = [MaintenanceLeader(engine, EngineSettings(), MaintenanceMetrics(CollectorRegistry())) for _ in range(3)]
    try:
        first_round = [await leader.run_once() for leader in leaders]
        assert first_round == [True, False, False]
        assert [await leader.run_once() for leader in leaders] == [True, False, False], "leadership is sticky"
        await leaders[0].leadership.resign()
        assert [await leader.run_once() for leader in leaders[1:]] == [True, False]
        assert leaders[1].metrics.leader._value.get() == 1 and leaders[2].metrics.leader._value.get() == 0
    finally:
        for leader in leaders:
            await leader.leadership.resign()


def _analyzed(leader: MaintenanceLeader, table: str) -> float:
    count: float = leader.metrics.tables_analyzed.labels(table)._value.get()
    return count


async def test_the_leader_measures_a_table_that_outgrew_its_statistics(engine: Engine) -> None:
    """A job table grown past twice what PostgreSQL measured of it is analyzed on the leader's next tick,
    once, and counted; a follower leaves it alone."""
    leader, follower = (MaintenanceLeader(engine, EngineSettings(), MaintenanceMetrics(CollectorRegistry()))
                        for _ in range(2))  # fmt: skip
    try:
        assert [await leader.run_once(), await follower.run_once()] == [True, False]
        await engine.create_dag([JobSpec(job_type="t") for _ in range(GROWN)])
        assert not await follower.run_once() and _analyzed(follower, "job_rows") == 0
        assert await leader.run_once() and _analyzed(leader, "job_rows") == 1
        assert await leader.run_once() and _analyzed(leader, "job_rows") == 1, "measured: not outgrown any more"
    finally:
        for each in (leader, follower):
            await each.leadership.resign()
