"""Under load a heartbeat and a completion batch of one worker locked the same jobs in opposite orders and
deadlocked, and a completion that lost failed its job for good. A worker's heartbeat now runs between its
completion writes, and a deadlock's victim (between any two transactions) is written again, never failed."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from conveyor.db.connection import Pool
from conveyor.db.records import HeldJob, JobRow, JobStatus
from conveyor.pipeline.engine import Engine
from conveyor.pipeline.engine.dag import JobSpec
from conveyor.pipeline.worker.completer import Completer
from tests.integration.conftest import wait_until

LOCK_ROW = "UPDATE job_rows SET lease_expires_at = lease_expires_at WHERE id = $1"


async def _waiting_on_a_lock(pool: Pool) -> bool:
    async with pool.acquire() as conn:
        count = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
    return bool(count)


async def test_no_completion_batch_is_written_while_the_heartbeat_runs(engine: Engine) -> None:
    """The worker's heartbeat runs between writes: the two lock the same jobs, and together they deadlocked."""
    await engine.create_dag([JobSpec(job_type="test.noop")])
    (job,) = await engine.claim(uuid.uuid4(), job_types=["test.noop"], limit=1)
    completer = Completer(engine)
    completer.add(job, {"ok": True})
    async with completer.between_writes():
        flush = asyncio.create_task(completer.flush())
        await asyncio.sleep(0.3)
        assert not flush.done() and (await engine.get(job.id)).status is JobStatus.RUNNING, "the write waits"
        assert await engine.heartbeat([HeldJob(job.id, job.attempts)]) == {job.id: False}
    await flush
    assert (await engine.get(job.id)).status is JobStatus.COMPLETED


async def test_a_completion_that_loses_a_deadlock_is_written_again_not_failed(engine: Engine) -> None:
    """The completion locks its job, then waits for its child, which another transaction holds; that one
    then waits for the job. PostgreSQL rolls back the completion (it waited first): a batch of one, which a
    refusal would fail permanently."""
    dag = await engine.create_dag([JobSpec(job_type="test.noop", name="parent"),
                                   JobSpec(job_type="test.noop", name="child", depends_on=["parent"])])  # fmt: skip
    (parent,) = await engine.claim(uuid.uuid4(), job_types=["test.noop"], limit=1)
    refused: list[tuple[JobRow, Any]] = []

    async def on_refused(job: JobRow, error: Any) -> None:
        refused.append((job, error))

    completer = Completer(engine, on_refused=on_refused)
    completer.add(parent, {"ok": True})
    async with engine.pool.acquire() as other:
        transaction = other.transaction()
        await transaction.start()
        await other.execute(LOCK_ROW, dag.ids["child"])
        flush = asyncio.create_task(completer.flush())
        await wait_until(lambda: _waiting_on_a_lock(engine.pool), within=10, what="a statement waiting on a row lock")
        await other.execute(LOCK_ROW, parent.id)  # waits until the deadlock's victim, the completion, rolls back
        await transaction.commit()
    await flush
    assert refused == [], "a rolled-back completion is not the result's fault"
    assert (await engine.get(parent.id)).status is JobStatus.COMPLETED
    assert (await engine.get(dag.ids["child"])).status is JobStatus.PENDING, "and its child was released"
