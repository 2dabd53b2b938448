"""The completion statement keeps one cached plan rather than being planned afresh on every call.

PostgreSQL plans a prepared statement for its values five times, then keeps its generic plan unless that
costs more than the average plan it made for values. The completion is planned for a job table with no
statistics yet (a fresh one growing faster than autovacuum analyzes it): the case in which its old text
was planned on every call, by the HTTP API and by workers alike.
"""

from __future__ import annotations

import uuid

import pytest

from conveyor.db import jobs as job_queries
from conveyor.db.connection import Connection, Pool
from conveyor.db.records import CompletionRow
from conveyor.pipeline.engine import Engine
from conveyor.pipeline.engine.dag import JobSpec

JOBS = 20_000
CALLS = 12
#: PostgreSQL's own count of plans made for values before it weighs the generic plan.
CUSTOM_PLANS_BEFORE_CHOOSING = 5


async def _unanalyzed_backlog(pool: Pool, conn: Connection) -> None:
    await conn.execute("ALTER TABLE job_rows SET (autovacuum_enabled = false)")  # this test's own database
    engine = Engine(pool)
    for _ in range(0, JOBS, 5_000):
        await engine.create_dag([JobSpec(job_type="t") for _ in range(5_000)])


async def _completion_plans(conn: Connection) -> tuple[int, int]:
    """(generic plans, custom plans) this session made of ``job_complete_many``."""
    row = await conn.fetchrow(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE '-- Complete jobs%'"
    )
    assert row is not None
    return row["generic_plans"], row["custom_plans"]


async def _claim_one(conn: Connection, worker: uuid.UUID) -> CompletionRow:
    (job,) = await job_queries.claim(conn, job_types=["t"], worker_id=worker, limit=1, lease_grace_seconds=5)
    return CompletionRow(job.id, job.attempts, {})


@pytest.mark.parametrize("by_http", [True, False], ids=["http", "worker"])
async def test_a_completion_keeps_its_generic_plan(pool: Pool, conn: Connection, by_http: bool) -> None:
    """An HTTP worker names itself and not the attempt; a worker process names the attempt and not itself."""
    await _unanalyzed_backlog(pool, conn)
    worker = uuid.uuid4()
    for _ in range(CALLS):
        held = await _claim_one(conn, worker)
        if by_http:
            outcome = await job_queries.complete_many(conn, [held._replace(attempt=None)], worker_id=worker)
        else:
            outcome = await job_queries.complete_many(conn, [held])
        assert outcome.completed == {held.id}
    generic, custom = await _completion_plans(conn)
    assert (generic, custom) == (CALLS - CUSTOM_PLANS_BEFORE_CHOOSING, CUSTOM_PLANS_BEFORE_CHOOSING)
