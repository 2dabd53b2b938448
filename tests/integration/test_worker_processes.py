"""Worker processes as users run them: crashes, graceful stops, Redis outages, several at once, autoscaling."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, cast

from prometheus_client import CollectorRegistry

from conveyor.db import workers as worker_queries
from conveyor.db.connection import acquire
from conveyor.db.records import HeldJob, JobFilter, JobRow, JobStatus, WorkerRow
from conveyor.pipeline.engine import Engine
from conveyor.pipeline.engine.dag import JobSpec
from conveyor.pipeline.engine.settings import EngineSettings
from conveyor.pipeline.engine.wakeup import WakeupPublisher, redis_client
from conveyor.pipeline.handlers import builtin_handlers
from conveyor.pipeline.handlers.base import HandlerRegistry
from conveyor.pipeline.storage.client import s3_client
from conveyor.pipeline.worker.autoscale import AutoscaleMetrics, Autoscaler, Bounds
from conveyor.pipeline.worker.claim_ahead import RecentFinishes
from conveyor.pipeline.worker.metrics import WorkerMetrics
from conveyor.pipeline.worker.settings import WorkerSettings
from conveyor.pipeline.worker.worker import Worker
from conveyor.settings import Settings
from tests.conftest import stack_async
from tests.integration.conftest import Workers, executions, wait_until


async def jobs_in(engine: Engine, status: JobStatus, limit: int = 100_000) -> list[JobRow]:
    return await engine.list_jobs(JobFilter(status=status), limit=limit)


async def create(engine: Engine, count: int, job_type: str, **params: Any) -> list[str]:
    ids = []
    for start in range(0, count, 5000):
        specs = [JobSpec(job_type=job_type, payload={"params": params}, timeout_ms=120_000)
                 for _ in range(min(5000, count - start))]  # fmt: skip
        ids += [str(i) for i in (await engine.create_dag(specs)).ids.values()]
    return ids


async def test_sigkill_of_a_worker_holding_twenty_jobs(engine: Engine, workers: Workers, tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    ids = await create(engine, 20, "test.sleep", seconds=3, log=str(log))
    doomed = workers.start("--concurrency", "20")
    await wait_until(lambda: _count(engine, JobStatus.RUNNING, 20), within=30, what="20 running jobs")
    # Claimed is not yet started: kill only once every handler has begun (what the assertions count).
    await wait_until(lambda: _started(log, 20), within=10, what="20 handlers started")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()

    workers.start("--concurrency", "20")
    await wait_until(lambda: _count(engine, JobStatus.COMPLETED, 20), within=60, what="20 completed jobs")

    runs = executions(log)
    assert all(runs[(job_id, "done")] == 1 for job_id in ids), "each job completes exactly once"
    assert all(runs[(job_id, "start")] == 2 for job_id in ids), "started by the dead worker, then by the new one"
    for job in await jobs_in(engine, JobStatus.COMPLETED):
        assert job.attempts == 2
        assert [e["kind"] for e in job.errors] == ["worker_lost"]


async def test_sigterm_lets_short_jobs_finish_and_hands_long_ones_back(
    engine: Engine, workers: Workers, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    quick = await create(engine, 5, "test.sleep", seconds=0.3, log=str(log))
    slow = await create(engine, 5, "test.sleep", seconds=60, log=str(log))
    worker = workers.start("--concurrency", "10", CONVEYOR_WORKER__SHUTDOWN_GRACE_SECONDS="2")
    await wait_until(lambda: _count(engine, JobStatus.RUNNING, 10), within=30, what="10 running jobs")
    worker.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(worker.wait, 30) == 0

    for job_id in quick:
        assert (await engine.get(uuid.UUID(job_id))).status is JobStatus.COMPLETED
    for job_id in slow:
        job = await engine.get(uuid.UUID(job_id))
        assert (job.status, job.attempts, job.errors) == (JobStatus.PENDING, 0, []), "back unrun, attempt unspent"
    (row,) = [w for w in await _workers(engine) if w.status == "STOPPED"]
    assert row.jobs_completed == 5


async def test_four_worker_processes_drain_twenty_thousand_jobs_without_double_execution(
    engine: Engine, workers: Workers, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    ids = await create(engine, 20_000, "test.noop", log=str(log))
    for _ in range(4):
        workers.start("--concurrency", "16")
    await wait_until(lambda: _count(engine, JobStatus.COMPLETED, 20_000), within=240, what="20,000 completed jobs")
    runs = executions(log)
    assert len(runs) == 20_000 and set(runs.values()) == {1}
    assert {job_id for job_id, _ in runs} == set(ids)
    per_worker = Counter(str(job.worker_id) for job in await jobs_in(engine, JobStatus.COMPLETED))
    assert len(per_worker) == 4, "every process took a share"


async def test_jobs_complete_while_redis_is_down_and_wakeups_resume_after(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    redis = redis_client(settings.redis)
    publisher = WakeupPublisher(redis, settings.redis)
    waking = Engine(engine.pool, wakeup=publisher)
    registry = registry_with_test_handlers()
    metrics = WorkerMetrics(CollectorRegistry())
    worker_settings = WorkerSettings(poll_interval_seconds=0.5, heartbeat_interval_seconds=0.5, concurrency=4)
    worker = Worker(waking, registry, s3_client(settings.s3), redis, worker_settings, EngineSettings(),
                    settings.redis, metrics)  # fmt: skip
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        await asyncio.wait_for(worker.listener.connected.wait(), 10)
        await stack_async("down", "redis")
        try:
            await create(waking, 5, "test.noop")
            await wait_until(lambda: _count(waking, JobStatus.COMPLETED, 5), within=15, what="jobs done by polling")
        finally:
            await stack_async("up", "redis")
        await asyncio.wait_for(worker.listener.connected.wait(), 15)
        woken = metrics.claims.labels("wakeup")._value.get()
        await create(waking, 1, "test.noop")
        await wait_until(
            lambda: _count(waking, JobStatus.COMPLETED, 6), within=10, what="the job after Redis came back"
        )
        assert metrics.claims.labels("wakeup")._value.get() > woken, "a wake-up, not the poll, claimed it"
    finally:
        stop.set()
        await running
        await publisher.close()
        await redis.aclose()


async def test_autoscale_grows_under_a_backlog_and_shrinks_when_idle(
    engine: Engine, workers: Workers, tmp_path: Path
) -> None:
    await create(engine, 300, "test.sleep", seconds=0.1)
    scaler = _sleep_scaler(engine, workers, backlog_per_process=10)
    try:
        grown = [await scaler.run_once() for _ in range(4)]
        assert grown == [1, 1, 1, 0] and len(scaler.processes) == 3, "up to MAX, never past it"
        await wait_until(lambda: _count(engine, JobStatus.COMPLETED, 300), within=120, what="the backlog drained")
        shrunk = [await scaler.run_once() for _ in range(4)]
        assert shrunk == [-1, -1, 0, 0] and len(scaler.processes) == 1, "down to MIN, never below it"
    finally:
        await scaler.stop_all()


async def test_autoscale_keeps_the_processes_its_running_jobs_need(engine: Engine, workers: Workers) -> None:
    """Nothing waits once every job is claimed, yet the jobs running need every process: none is retired."""
    await create(engine, 12, "test.sleep", seconds=8)
    scaler = _sleep_scaler(engine, workers, backlog_per_process=2)
    try:
        assert [await scaler.run_once() for _ in range(3)] == [1, 1, 1]
        await wait_until(lambda: _count(engine, JobStatus.RUNNING, 12), within=60, what="every job running")
        held = [await scaler.run_once() for _ in range(3)]
        assert held == [0, 0, 0] and len(scaler.processes) == 3, "12 running fill more than half of two processes"
        await wait_until(lambda: _count(engine, JobStatus.COMPLETED, 12), within=60, what="the jobs finished")
        assert [await scaler.run_once() for _ in range(3)] == [-1, -1, 0] and len(scaler.processes) == 1
    finally:
        await scaler.stop_all()


async def test_a_claim_asks_for_the_free_slots_it_counted_though_finishes_expire_meanwhile(
    settings: Settings, engine: Engine
) -> None:
    """Finishes leave the claim-ahead window as the clock moves: a claim must not read the free slots again
    after deciding there are some (a second reading below zero was a negative LIMIT, and the process died)."""
    redis = redis_client(settings.redis)
    worker = Worker(engine, registry_with_test_handlers(), s3_client(settings.s3), redis,
                    WorkerSettings(job_types=["test.sleep"], concurrency=1, claim_ahead_seconds=1),
                    EngineSettings(), settings.redis, WorkerMetrics(CollectorRegistry()))  # fmt: skip
    worker._finished = window = _Expiring(steady=3)
    completer = asyncio.create_task(worker.completer.run())
    try:
        await worker.register()
        await create(engine, 6, "test.sleep", seconds=1)
        assert await worker.claim_once() == 4, "one slot and three ahead"
        window.steady, window.next_reading = 0, 4  # four finishes at the next reading, expired right after it
        assert await worker.claim_once() == 1, "one more, as counted when the claim began"
    finally:
        await worker.shutdown()
        completer.cancel()
        await redis.aclose()


class _Expiring(RecentFinishes):
    """A claim-ahead window that counts ``steady`` finishes, or ``next_reading`` once when set."""

    def __init__(self, steady: int) -> None:
        super().__init__(window_seconds=1, cap=16)
        self.steady, self.next_reading = steady, cast(int | None, None)

    def count(self, now: float) -> int:
        if self.next_reading is None:
            return self.steady
        reading, self.next_reading = self.next_reading, None
        return reading


def _sleep_scaler(engine: Engine, workers: Workers, *, backlog_per_process: int) -> Autoscaler:
    """1..3 processes of 4 slots for ``test.sleep``, deciding on every check (patience 1)."""
    settings = WorkerSettings(job_types=["test.sleep"], concurrency=4, autoscale_patience=1,
                              autoscale_backlog_per_process=backlog_per_process)  # fmt: skip
    return Autoscaler(engine, settings, Bounds(1, 3), lambda: workers.start("--concurrency", "4"),
                      AutoscaleMetrics(CollectorRegistry()), ["test.sleep"])  # fmt: skip


def registry_with_test_handlers() -> HandlerRegistry:
    """Built-in handlers plus the test handlers, as a worker with handler_modules loads them."""
    registry = builtin_handlers()
    registry.load_module("tests.support.handlers")
    return registry


async def _started(log: Path, count: int) -> bool:
    return sum(n for (_, event), n in executions(log).items() if event == "start") >= count


async def _count(engine: Engine, status: JobStatus, at_least: int) -> bool:
    return len(await jobs_in(engine, status)) >= at_least


async def _workers(engine: Engine) -> list[WorkerRow]:
    async with acquire(engine.pool) as conn:
        return await worker_queries.list_workers(conn, include_stopped=True)


async def test_a_job_claimed_while_a_heartbeat_is_in_flight_is_not_taken_for_lost(
    settings: Settings, engine: Engine
) -> None:
    """Regression: the heartbeat used to judge every running job against an answer about fewer jobs."""
    redis = redis_client(settings.redis)
    worker = Worker(engine, registry_with_test_handlers(), s3_client(settings.s3), redis,
                    WorkerSettings(job_types=["test.sleep"], concurrency=4), EngineSettings(), settings.redis,
                    WorkerMetrics(CollectorRegistry()))  # fmt: skip
    try:
        await worker.register()
        await create(engine, 2, "test.sleep", seconds=2)
        await worker.claim_once()
        original = engine.heartbeat

        async def slow_heartbeat(held: Any) -> dict[uuid.UUID, bool]:
            answer = await original(held)
            await worker.claim_once()  # a claim lands while the heartbeat's answer is on its way back
            return answer

        engine.heartbeat = slow_heartbeat  # type: ignore[method-assign]
        await create(engine, 1, "test.sleep", seconds=2)
        await worker.heartbeat_once()
        assert len(worker.running) == 3 and all(r.stop_reason is None for r in worker.running.values())
        await asyncio.gather(*(r.task for r in list(worker.running.values())))
        await worker.completer.flush()
        assert await _count(engine, JobStatus.COMPLETED, 3)
    finally:
        await redis.aclose()


async def test_fast_jobs_are_claimed_ahead_and_a_shutdown_hands_those_not_started_back_unrun(
    settings: Settings, engine: Engine
) -> None:
    """After jobs finish fast, one claim takes more than the free slots; those wait for a slot, hold their
    leases, and a shutdown requeues the ones never started without spending an attempt."""
    redis, metrics = redis_client(settings.redis), CollectorRegistry()
    worker = Worker(engine, registry_with_test_handlers(), s3_client(settings.s3), redis,
                    WorkerSettings(job_types=["test.sleep"], concurrency=2, claim_ahead_seconds=1,
                                   shutdown_grace_seconds=10), EngineSettings(), settings.redis,
                    WorkerMetrics(metrics))  # fmt: skip
    completer = asyncio.create_task(worker.completer.run())
    try:
        await worker.register()
        await create(engine, 2, "test.sleep", seconds=0)
        assert await worker.claim_once() == 2, "nothing finished yet: only the free slots"
        await asyncio.gather(*(r.task for r in list(worker.running.values())))
        await create(engine, 6, "test.sleep", seconds=1)
        assert await worker.claim_once() == 4, "two slots, and two ahead for the two jobs that just finished"
        await asyncio.sleep(0.2)
        assert sorted(r.started for r in worker.running.values()) == [False, False, True, True]
        assert metrics.get_sample_value("conveyor_worker_slots_busy") == 2, "the jobs waiting hold no slot"
        held = await engine.heartbeat([HeldJob(r.job.id, r.job.attempts) for r in worker.running.values()])
        assert len(held) == 4, "the jobs waiting for a slot keep their leases"
        await worker.shutdown()
        pending = await jobs_in(engine, JobStatus.PENDING)
        assert len(pending) == 4 and all(job.attempts == 0 for job in pending), "never started: no attempt spent"
        assert await _count(engine, JobStatus.COMPLETED, 4), "the two running finished within the grace period"
        assert metrics.get_sample_value("conveyor_worker_slots_busy") == 0
    finally:
        completer.cancel()
        await redis.aclose()
