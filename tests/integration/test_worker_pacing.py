"""Under load a worker lets work pile up for a moment, so one statement serves several jobs: completions
share a write, and wake-ups arriving close together share a claim. At light load neither waits."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from conveyor.db.records import JobRow, JobStatus
from conveyor.pipeline.engine import Engine
from conveyor.pipeline.engine.dag import JobSpec
from conveyor.pipeline.engine.settings import EngineSettings
from conveyor.pipeline.engine.wakeup import WakeupPublisher, redis_client
from conveyor.pipeline.storage.client import s3_client
from conveyor.pipeline.worker.completer import Completer
from conveyor.pipeline.worker.metrics import WorkerMetrics
from conveyor.pipeline.worker.settings import WorkerSettings
from conveyor.pipeline.worker.worker import Worker
from conveyor.settings import Settings
from tests.integration.conftest import wait_until
from tests.integration.test_worker_processes import create, registry_with_test_handlers

WORKER = uuid.uuid4()


class CountedEngine(Engine):
    """The real engine, noting the size of every completion batch it writes."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine.pool)
        self.batches: list[int] = []

    async def complete_many(self, done: Sequence[tuple[JobRow, Any]]) -> set[uuid.UUID]:
        self.batches.append(len(done))
        return await super().complete_many(done)


async def _status(engine: Engine, job: JobRow) -> JobStatus:
    return (await engine.get(job.id)).status


async def test_a_completion_after_a_quiet_spell_is_written_at_once_and_later_ones_share_a_batch(
    engine: Engine,
) -> None:
    counted = CountedEngine(engine)
    await create(counted, 3, "test.noop")
    first, second, third = await counted.claim(WORKER, job_types=["test.noop"], limit=3)
    # An interval far longer than the test: only the batch filling up can end the wait.
    completer = Completer(counted, interval=600, full=2)
    writer = asyncio.create_task(completer.run())
    try:
        completer.add(first, {"n": 1})
        await wait_until(lambda: _done(counted, first), within=10, what="the first completion, written at once")
        completer.add(second, {"n": 2})
        await asyncio.sleep(0.3)
        assert await _status(counted, second) is JobStatus.RUNNING, "within the interval: it waits for company"
        completer.add(third, {"n": 3})  # two waiting: a full batch goes now
        await wait_until(lambda: _done(counted, third), within=10, what="the full batch")
    finally:
        writer.cancel()
    assert counted.batches == [1, 2]
    assert await _status(counted, second) is JobStatus.COMPLETED


async def _done(engine: Engine, job: JobRow) -> bool:
    return await _status(engine, job) is JobStatus.COMPLETED


@dataclass(frozen=True)
class Waking:
    """A running worker's side of a test: the engine that wakes it after each commit, and what it counted."""

    engine: Engine
    publisher: WakeupPublisher
    metrics: WorkerMetrics


@contextlib.asynccontextmanager
async def waking_worker(engine: Engine, settings: Settings, worker_settings: WorkerSettings) -> AsyncIterator[Waking]:
    """A worker running on ``engine``'s pool, its wake-up listener connected, woken through Redis after every
    commit (no debounce); stopped, and its clients closed, on leaving."""
    redis = redis_client(settings.redis)
    publisher = WakeupPublisher(redis, settings.redis, debounce_seconds=0)
    waking = Waking(Engine(engine.pool, wakeup=publisher), publisher, WorkerMetrics(CollectorRegistry()))
    worker = Worker(waking.engine, registry_with_test_handlers(), s3_client(settings.s3), redis, worker_settings,
                    EngineSettings(), settings.redis, waking.metrics)  # fmt: skip
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        await worker.listener.connected.wait()
        yield waking
    finally:
        stop.set()
        await running
        await publisher.close()
        await redis.aclose()


async def test_wakeups_close_together_share_one_claim(engine: Engine, settings: Settings) -> None:
    paced = WorkerSettings(job_types=["test.noop"], concurrency=64, poll_interval_seconds=60,
                           wakeup_claim_interval_seconds=1.0)  # fmt: skip
    async with waking_worker(engine, settings, paced) as waking:
        await asyncio.sleep(1.2)  # a quiet spell since the worker's first claim
        ids: list[str] = []
        for _ in range(20):  # twenty transactions, each followed by a wake-up
            ids += await create(waking.engine, 1, "test.noop")
            await asyncio.sleep(0.01)
        await wait_until(lambda: _all_completed(waking.engine, ids), within=20, what="the twenty jobs")
    assert waking.publisher.sent >= 10, "the wake-ups were many"
    by_wakeup = waking.metrics.claims.labels("wakeup")._value.get()
    assert 1 <= by_wakeup <= 3, f"{by_wakeup:g} claims for {waking.publisher.sent} wake-ups"


async def _all_completed(engine: Engine, ids: list[str]) -> bool:
    return {(await engine.get(uuid.UUID(job_id))).status for job_id in ids} == {JobStatus.COMPLETED}


async def test_a_worker_claims_the_children_its_own_completion_released_without_the_wakeup_pacing(
    engine: Engine, settings: Settings
) -> None:
    """One worker process at light load: each level of a DAG used to wait out the wake-up pacing after the
    claim of the level before (end to end, 18 ms more to a pipeline's end). Its own release claims at once."""
    pacing = 1.0  # far longer than a level takes: a child claimed through the wake-up would wait this long
    paced = WorkerSettings(job_types=["test.noop"], poll_interval_seconds=60, wakeup_claim_interval_seconds=pacing)
    async with waking_worker(engine, settings, paced) as waking:
        # A quiet spell: the parent's wake-up claims at once. The listener wakes the worker once on connecting
        # (a wake-up may have been sent before it listened), and that claim waits out one pacing itself.
        await asyncio.sleep(2 * pacing + 0.2)
        chain = [JobSpec(job_type="test.noop", payload={}, name=f"level{n}",
                         depends_on=[f"level{n - 1}"] if n else []) for n in range(3)]  # fmt: skip
        ids = list((await waking.engine.create_dag(chain)).ids.values())
        started = asyncio.get_running_loop().time()
        await wait_until(lambda: _all_completed(waking.engine, [str(i) for i in ids]), within=20, what="the chain")
        took = asyncio.get_running_loop().time() - started
    assert took < pacing, f"three levels took {took:.2f}s: a level waited out the pacing"
    assert waking.metrics.claims.labels("released")._value.get() >= 2, "each child claimed on its release"


async def test_a_claim_that_came_back_short_is_not_followed_at_once_by_another(
    engine: Engine, settings: Settings
) -> None:
    """A short claim took every ready job: claiming again at once found nothing, and those empty claims
    were more than half of all claims at 150 uploads/s. Only a full claim is followed at once."""
    polling_rarely = WorkerSettings(job_types=["test.noop"], concurrency=8, poll_interval_seconds=60)
    async with waking_worker(engine, settings, polling_rarely) as waking:
        for _ in range(5):  # five lone jobs, each claimed through its own wake-up
            lone = await create(waking.engine, 1, "test.noop")
            await wait_until(functools.partial(_all_completed, waking.engine, lone), within=20, what="the lone job")
    claims = {t: waking.metrics.claims.labels(t)._value.get() for t in ("start", "wakeup", "poll", "slot", "backlog")}
    assert claims["backlog"] == 0, claims
    assert claims["wakeup"] >= 5, claims
