"""Flow limits across real worker processes: a key's cap is never passed while four processes drain its
jobs, and a SIGKILLed worker's slots come back once its jobs are rescued."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from conveyor.db.connection import Pool
from conveyor.db.records import JobFilter, JobStatus
from conveyor.pipeline.engine import Engine
from conveyor.pipeline.engine.dag import JobSpec
from tests.integration.conftest import FAST, Workers, executions, wait_until

pytestmark = pytest.mark.timeout(300)
KEYS = [f"tenant-{n}" for n in range(5)]
LIMIT = 4


async def _create(engine: Engine, specs: list[JobSpec]) -> list[str]:
    ids: list[str] = []
    for start in range(0, len(specs), 1000):
        ids += [str(i) for i in (await engine.create_dag(specs[start : start + 1000])).ids.values()]
    return ids


class RunningSampler:
    """Reads the RUNNING jobs of each key every 10 ms (one statement each time) and keeps the maximum."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.most: Counter[str] = Counter()
        self.samples = 0

    async def run(self, stop: asyncio.Event) -> None:
        async with self.pool.acquire() as conn:
            while not stop.is_set():
                rows = await conn.fetch(
                    "SELECT concurrency_key, count(*) FROM job_rows WHERE status = 'RUNNING' GROUP BY 1"
                )
                for key, running in rows:
                    self.most[key] = max(self.most[key], running)
                self.samples += 1
                await asyncio.sleep(0.01)


async def test_four_worker_processes_never_pass_a_key_s_cap(
    engine: Engine, pool: Pool, workers: Workers, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    params = {"params": {"seconds": 0.02, "log": str(log)}}
    specs = [JobSpec(job_type="test.sleep", payload=params, concurrency_key=KEYS[i % len(KEYS)],
                     concurrency_limit=LIMIT) for i in range(5000)]  # fmt: skip
    ids = await _create(engine, specs)
    sampler, stop = RunningSampler(pool), asyncio.Event()
    sampling = asyncio.create_task(sampler.run(stop))
    for _ in range(4):
        workers.start("--concurrency", "16")
    try:
        await wait_until(lambda: _completed(engine, 5000), within=240, what="5,000 keyed jobs drained")
    finally:
        stop.set()
        await sampling
    assert sampler.samples > 100
    assert {key: sampler.most[key] for key in KEYS} == dict.fromkeys(KEYS, LIMIT), "each cap reached, never passed"
    runs = executions(log)
    assert all(runs[(job_id, "done")] == 1 for job_id in ids), "each job ran once"
    assert {row.name: row.running for row in await engine.flow.all()} == dict.fromkeys(KEYS, 0)


async def test_a_killed_worker_s_slots_come_back_when_its_jobs_are_rescued(
    engine: Engine, workers: Workers, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    hang = {"params": {"first_seconds": 3600, "seconds": 0, "log": str(log)}}
    hangs = [JobSpec(job_type="test.sleep_first", payload=hang, concurrency_key="scanner", concurrency_limit=LIMIT,
                     timeout_ms=600_000) for _ in range(LIMIT)]  # fmt: skip
    stuck = await _create(engine, hangs)
    doomed = workers.start("--concurrency", "8")
    await wait_until(lambda: _running(engine, LIMIT), within=30, what="the key's four slots taken")
    waiting = await _create(engine, [JobSpec(job_type="test.noop", payload={"params": {"log": str(log)}},
                                             concurrency_key="scanner") for _ in range(6)])  # fmt: skip
    workers.start("--concurrency", "8")
    await asyncio.sleep(2)
    held = await engine.get(uuid.UUID(waiting[0]))
    assert held.status is JobStatus.PENDING, "the second worker is held back by the key's cap"
    assert [h.describe() for h in await engine.flow.holds(held.id)] == ["key 'scanner' runs 4 of at most 4"]
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    killed = time.monotonic()
    await wait_until(lambda: _completed(engine, 10), within=60, what="every job done on the surviving worker")
    recovered = time.monotonic() - killed
    print(f"the key's slots came back {recovered:.1f} s after the SIGKILL")  # shown with -rP
    budget = float(FAST["CONVEYOR_ENGINE__WORKER_LOST_AFTER_SECONDS"]) + 10 * float(
        FAST["CONVEYOR_ENGINE__RESCUE_INTERVAL_SECONDS"]
    )
    assert recovered < budget, f"slots came back {recovered:.1f}s after the kill (lost after 3 s, rescue 0.5 s)"
    for job_id in stuck:
        job = await engine.get(uuid.UUID(job_id))
        assert job.attempts == 2 and job.errors[0]["kind"] == "worker_lost", "the fault hit these jobs"
    assert {row.name: row.running for row in await engine.flow.all()} == {"scanner": 0}


async def _running(engine: Engine, count: int) -> bool:
    return len(await engine.list_jobs(JobFilter(status=JobStatus.RUNNING), limit=100)) >= count


async def _completed(engine: Engine, count: int) -> bool:
    return len(await engine.list_jobs(JobFilter(status=JobStatus.COMPLETED), limit=100_000)) >= count
