"""A result PostgreSQL cannot store fails its own job, and nothing else: the worker keeps completing jobs."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from conveyor.db.errors import DatabaseError
from conveyor.db.records import JobRow, JobStatus
from conveyor.pipeline.engine import Engine
from conveyor.pipeline.engine.settings import EngineSettings
from conveyor.pipeline.storage.client import s3_client
from conveyor.pipeline.worker.completer import Completer
from conveyor.pipeline.worker.metrics import WorkerMetrics
from conveyor.pipeline.worker.settings import WorkerSettings
from conveyor.pipeline.worker.worker import Worker
from conveyor.settings import Settings
from tests.integration.conftest import wait_until
from tests.integration.test_worker_processes import create, registry_with_test_handlers


async def _statuses(engine: Engine, ids: list[str]) -> dict[str, JobRow]:
    return {i: await engine.get(uuid.UUID(i)) for i in ids}


async def _all_final(engine: Engine, ids: list[str]) -> bool:
    return all(job.status.is_final for job in (await _statuses(engine, ids)).values())


async def test_poisoned_results_fail_their_jobs_and_the_worker_keeps_completing(
    engine: Engine, settings: Settings
) -> None:
    redis = aioredis.Redis.from_url(settings.redis.url)
    metrics = WorkerMetrics(CollectorRegistry())
    worker = Worker(engine, registry_with_test_handlers(), s3_client(settings.s3), redis,
                    WorkerSettings(job_types=["test.noop", "test.poison"], concurrency=8, poll_interval_seconds=0.2,
                                   heartbeat_interval_seconds=0.5),
                    EngineSettings(), settings.redis, metrics)  # fmt: skip
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        poisoned = await create(engine, 4, "test.poison")
        await wait_until(lambda: _all_final(engine, poisoned), within=20, what="the poisoned jobs to end")
        ordinary = await create(engine, 30, "test.noop")
        await wait_until(lambda: _all_final(engine, ordinary), within=20, what="the ordinary jobs after them")
    finally:
        stop.set()
        await running
        await redis.aclose()

    for job in (await _statuses(engine, poisoned)).values():
        assert job.status is JobStatus.FAILED and job.attempts == 1, "failed at once: retrying gives the same result"
        (error,) = job.errors
        assert error["kind"] == "permanent" and "cannot be stored in PostgreSQL" in error["message"], error
        assert "header[1]" in error["message"], "the error names where the bad value is"
    assert {j.status for j in (await _statuses(engine, ordinary)).values()} == {JobStatus.COMPLETED}
    assert metrics.jobs_completed.labels("test.noop")._value.get() == 30
    assert metrics.jobs_failed.labels("test.poison")._value.get() == 4
    assert set(worker.supervisor.failure_counts.values()) == {0}, worker.supervisor.failure_counts


async def test_a_refused_completion_is_split_out_and_the_rest_of_its_batch_is_written(engine: Engine) -> None:
    """The completer's own guard, for refusals no pre-check foresaw: the batch is halved until one remains."""
    ids = [uuid.UUID(i) for i in await create(engine, 5, "test.noop")]
    claimed = {job.id: job for job in await engine.claim(uuid.uuid4(), job_types=["test.noop"], limit=5)}
    refused: list[tuple[JobRow, DatabaseError]] = []

    async def on_refused(job: JobRow, error: DatabaseError) -> None:
        refused.append((job, error))

    completer = Completer(engine, on_refused=on_refused)
    results: list[Any] = [{"n": 1}, {"n": 2}, {"bad": "\x00"}, {"n": 4}, {"n": 5}]
    for job_id, result in zip(ids, results, strict=True):
        completer.add(claimed[job_id], result)
    assert [j.id for j in completer.held()] == ids, "unwritten completions are held (their leases are kept)"
    await completer.flush()

    assert [job.id for job, _ in refused] == [ids[2]]
    assert "PostgreSQL error" in str(refused[0][1])
    statuses = [(await engine.get(i)).status for i in ids]
    assert statuses == [JobStatus.COMPLETED] * 2 + [JobStatus.RUNNING] + [JobStatus.COMPLETED] * 2
    assert completer.held() == []
