"""Many claimers at once: SKIP LOCKED hands every job to exactly one of them."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

from conveyor.db.records import JobFilter, JobStatus
from conveyor.pipeline.engine import Engine
from conveyor.pipeline.engine.dag import JobSpec

JOBS = 10_000
CLAIMERS = 8


async def test_eight_claimers_drain_ten_thousand_jobs_exactly_once(engine: Engine) -> None:
    for start in range(0, JOBS, 2_000):
        await engine.create_dag([JobSpec(job_type="noop", payload={"n": n}) for n in range(start, start + 2_000)])
    claims: Counter[uuid.UUID] = Counter()
    completions: Counter[uuid.UUID] = Counter()

    async def claimer() -> None:
        worker = uuid.uuid4()
        while batch := await engine.claim(worker, limit=50):
            claims.update(job.id for job in batch)
            completions.update(await engine.complete_many([(job, {"by": str(worker)}) for job in batch]))

    await asyncio.gather(*(claimer() for _ in range(CLAIMERS)))

    assert len(claims) == JOBS
    assert max(claims.values()) == 1, "a job was claimed twice"
    assert len(completions) == JOBS and max(completions.values()) == 1
    remaining = await engine.list_jobs(JobFilter(status=JobStatus.PENDING), limit=1)
    assert remaining == []
