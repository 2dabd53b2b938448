"""Plans of the job statements: the completion keeps one cached plan, no statement naming its jobs by id
reads more of the table than those jobs, a claim reads only its own jobs' checkpoints, and the claim's
short way only the jobs it grants, whatever the statistics say.

PostgreSQL plans a prepared statement for its values five times, then keeps its generic plan unless that
costs more than the average plan it made for values. The completion is planned for a job table with no
statistics yet (a fresh one growing faster than autovacuum analyzes it): the case in which its old text
was planned on every call, by the HTTP API and by workers alike.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import pytest

from conveyor.db import jobs as job_queries
from conveyor.db.connection import Connection, Pool
from conveyor.db.records import CompletionRow, FailureRow, HeldJob, JobRow
from conveyor.pipeline.engine import Engine
from conveyor.pipeline.engine.dag import JobSpec
from conveyor.pipeline.maintenance.statistics import StatisticsKeeper

JOBS = 20_000
CALLS = 12
#: PostgreSQL's own count of plans made for values before it weighs the generic plan.
CUSTOM_PLANS_BEFORE_CHOOSING = 5


async def _unanalyzed_backlog(pool: Pool, conn: Connection, jobs: int = JOBS, job_type: str = "t") -> None:
    """``jobs`` PENDING jobs of ``job_type``, in a table autovacuum leaves alone (so unanalyzed until told)."""
    await conn.execute("ALTER TABLE job_rows SET (autovacuum_enabled = false)")  # this test's own database
    engine = Engine(pool)
    for _ in range(0, jobs, 5_000):
        await engine.create_dag([JobSpec(job_type=job_type) for _ in range(5_000)])


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


# -- by-id statements read their jobs by primary key, whatever the statistics say -------------------------

#: Jobs RUNNING (each with a BLOCKED child) when the statements run: what a wrong plan reads in full.
RUNNING = 2_000
#: Finished jobs in the table when it was analyzed: enough that reading it whole costs more than by key.
IDLE = 40_000
#: Jobs each statement names.
BATCH = 10
#: Job rows a statement may read per job it names: the job, its child, and their index neighbours.
READS_PER_JOB = 3

ByIdCall = Callable[[Connection, list[JobRow], list[uuid.UUID]], Awaitable[object]]


async def _running_after_an_idle_queue(pool: Pool, conn: Connection) -> tuple[list[JobRow], list[uuid.UUID]]:
    """RUNNING jobs, each with a BLOCKED child, in a table last analyzed while every job had finished: the
    statistics say no job runs or waits. Returns the running jobs and the children."""
    await _idle_queue(pool, conn)
    engine, worker = Engine(pool), uuid.uuid4()
    pairs = [spec for i in range(RUNNING) for spec in (JobSpec(job_type="t", name=f"p{i}"),
             JobSpec(job_type="child", name=f"c{i}", depends_on=[f"p{i}"]))]  # fmt: skip
    await engine.create_dag(pairs)
    running = [job for batch in await _claim_all(conn, "t", worker) for job in batch]
    children = await conn.fetch("SELECT child_id FROM job_dependencies WHERE parent_id = ANY($1::uuid[])",
                                [j.id for j in running[:BATCH]])  # fmt: skip
    return running, [r["child_id"] for r in children]


async def _idle_queue(pool: Pool, conn: Connection) -> None:
    """IDLE finished jobs, in a table then analyzed: its statistics say no job runs or waits, as they do
    when autovacuum analyzes a queue between bursts."""
    await _unanalyzed_backlog(pool, conn, IDLE, "idle")
    for held in await _claim_all(conn, "idle", uuid.uuid4()):
        await job_queries.complete_many(conn, [CompletionRow(j.id, j.attempts, {}) for j in held])
    await conn.execute("ANALYZE job_rows")


async def _claim_all(conn: Connection, job_type: str, worker: uuid.UUID) -> list[list[JobRow]]:
    batches = []
    while held := await job_queries.claim(conn, job_types=[job_type], worker_id=worker, limit=5_000,
                                          lease_grace_seconds=60):  # fmt: skip
        batches.append(held)
    return batches


async def _job_rows_read(conn: Connection) -> int:
    """Rows of job_rows this transaction has read so far, by sequential and index scans."""
    read: int = await conn.fetchval(
        "SELECT seq_tup_read + idx_tup_fetch FROM pg_stat_xact_user_tables WHERE relname = 'job_rows'"
    )
    return read


def _held(jobs: list[JobRow]) -> list[HeldJob]:
    return [HeldJob(j.id, j.attempts) for j in jobs]


async def _each(jobs: list[JobRow], call: Callable[[JobRow], Awaitable[object]]) -> None:
    """A single-job statement, once per job."""
    for job in jobs:
        await call(job)


BY_ID: dict[str, ByIdCall] = {
    "complete": lambda c, jobs, _: job_queries.complete_many(c, [CompletionRow(j.id, j.attempts, {}) for j in jobs]),
    "heartbeat": lambda c, jobs, _: job_queries.extend_leases(c, _held(jobs), lease_grace_seconds=5),
    "fail": lambda c, jobs, _: job_queries.fail_many(
        c, [FailureRow(j.id, j.attempts, {"message": "boom"}, None) for j in jobs]
    ),
    "requeue": lambda c, jobs, _: job_queries.requeue_many(c, _held(jobs)),
    "cancel_running": lambda c, jobs, _: _each(jobs, lambda j: job_queries.cancel_running(c, j.id, j.attempts)),
    "checkpoint": lambda c, jobs, _: _each(jobs, lambda j: job_queries.save_snapshot(c, j.id, j.attempts, {})),
    "cancel": lambda c, jobs, _: _each(jobs, lambda j: job_queries.cancel(c, j.id, reason="test")),
    "settle_children": lambda c, _, children: job_queries.settle_dependencies(c, children),
    "cancel_children": lambda c, jobs, _: job_queries.cancel_descendants(c, [j.id for j in jobs]),
}


async def test_statements_naming_jobs_read_only_them(pool: Pool, conn: Connection) -> None:
    """Planned with the statistics of an idle queue, a statement naming ten jobs still reads about ten job
    rows, not every running or waiting job: through their partial indexes it did, and a 60,000-job drain
    stalled for 30 s. The generic plan is forced: the one PostgreSQL keeps after five calls. Each statement
    runs in a transaction rolled back after, so all of them meet the same table."""
    running, children = await _running_after_an_idle_queue(pool, conn)
    reads = {}
    for name, call in BY_ID.items():
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        before = await _job_rows_read(conn)
        await call(conn, running[:BATCH], children)
        reads[name] = await _job_rows_read(conn) - before
        await transaction.rollback()
    too_many = [name for name, read in reads.items() if read > READS_PER_JOB * BATCH]
    assert not too_many, f"job rows read by each statement naming {BATCH} jobs: {reads}"


# -- the claim looks up the checkpoints of the jobs it claims, not the table of them ----------------------

#: Checkpoints kept (they stay until retention deletes their jobs): hashed whole per claim, they cost more
#: than the claim itself, and below a few thousand the planner prefers that to a probe per claimed job.
SNAPSHOTS = 3_000


async def test_a_claim_probes_only_the_checkpoints_of_its_jobs(pool: Pool, conn: Connection) -> None:
    """Whether a claimed job has a checkpoint is read by primary key, per job claimed, with the statistics
    of a table of thousands of checkpoints and the generic plan PostgreSQL keeps."""
    engine = Engine(pool)
    await engine.create_dag([JobSpec(job_type="done") for _ in range(SNAPSHOTS)])
    await conn.execute("INSERT INTO state_snapshots (job_id, attempt, state) SELECT id, 1, '{}' FROM job_rows")
    await engine.create_dag([JobSpec(job_type="t") for _ in range(BATCH)])
    await conn.execute("ANALYZE job_rows, state_snapshots")
    async with conn.transaction():
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        held = await job_queries.claim(conn, job_types=["t"], worker_id=uuid.uuid4(), limit=BATCH,
                                       lease_grace_seconds=5)  # fmt: skip
        read = await conn.fetchrow(
            "SELECT seq_tup_read, idx_scan FROM pg_stat_xact_user_tables WHERE relname = 'state_snapshots'"
        )
    assert len(held) == BATCH and not any(job.has_checkpoint for job in held)
    assert read is not None and (read["seq_tup_read"], read["idx_scan"]) == (0, BATCH), dict(read or {})


# -- the claim's short way reads the jobs it grants, not the backlog ----------------------------------------


async def _generic_claim(conn: Connection) -> tuple[list[JobRow], int]:
    """A claim of BATCH jobs of any type under the generic plan PostgreSQL keeps; the jobs, and the job rows
    it read."""
    async with conn.transaction():
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        before = await _job_rows_read(conn)
        held = await job_queries.claim(conn, job_types=[], worker_id=uuid.uuid4(), limit=BATCH,
                                       lease_grace_seconds=5)  # fmt: skip
        return held, await _job_rows_read(conn) - before


async def test_a_plain_claim_reads_only_the_jobs_it_grants(pool: Pool, conn: Connection) -> None:
    """The claim's short way (one key, no flow limit) under the generic plan PostgreSQL keeps, in a backlog
    its statistics have not seen yet: it reads about as many job rows as it grants. Ordered by the priority
    index and not the key's, a first text of it read and sorted the whole backlog (20,013 rows here)."""
    await _unanalyzed_backlog(pool, conn)
    held, read = await _generic_claim(conn)
    assert len(held) == BATCH
    assert read <= READS_PER_JOB * BATCH, f"job rows read by a claim of {BATCH}: {read}"


# -- the claim's full way reads each key's next jobs, not the backlog ------------------------------------

#: Concurrency keys with a backlog: more than one, so the claim takes its full (fair) way.
KEYS = ("tenant-a", "tenant-b")
#: PENDING jobs per key: a burst the statistics have not seen.
BACKLOG_PER_KEY = 5_000


async def test_a_fair_claim_reads_only_each_keys_next_jobs(pool: Pool, conn: Connection) -> None:
    """The claim's full way under the generic plan PostgreSQL keeps, planned with the statistics of an idle
    queue and then met by a burst: it reads about as many job rows as it considers (a share of the limit
    per key, and a quarter more), not the backlog. Through the priority index it read and sorted every
    PENDING job several times per claim, so a burst after a quiet spell made each claim slower the longer
    the backlog grew (up to 11,758 buffers a claim end to end, and the backlog never drained)."""
    await _idle_queue(pool, conn)
    await Engine(pool).create_dag([JobSpec(job_type="t", concurrency_key=key) for key in KEYS
                                   for _ in range(BACKLOG_PER_KEY)])  # fmt: skip
    held, read = await _generic_claim(conn)
    assert len(held) == BATCH and {job.concurrency_key for job in held} == set(KEYS)
    assert read <= READS_PER_JOB * BATCH * len(KEYS), f"job rows read by a fair claim of {BATCH}: {read}"


# -- plans made while the job table was young are made again once it outgrew them -------------------------

#: Jobs in the table when the completion is first planned: a few pages, never measured.
YOUNG = 20


async def _complete_reading(conn: Connection, jobs: list[JobRow]) -> int:
    """Complete ``jobs`` on ``conn``; the job rows that read."""
    async with conn.transaction():
        before = await _job_rows_read(conn)
        await job_queries.complete_many(conn, [CompletionRow(j.id, j.attempts, {}) for j in jobs])
        return await _job_rows_read(conn) - before


async def test_plans_made_on_a_young_table_are_made_again_once_it_outgrew_them(pool: Pool, conn: Connection) -> None:
    """The completion's cached plan, made while the job table measured a few jobs (autovacuum's first visit
    to a fresh install), reads the whole table once it holds thousands, until autovacuum comes by again (a
    minute later by default). The statistics keeper measures the grown table, PostgreSQL plans the
    statement again, and a completion of ten jobs reads about ten rows."""
    await conn.execute("ALTER TABLE job_rows SET (autovacuum_enabled = false)")  # before any plan is cached
    await Engine(pool).create_dag([JobSpec(job_type="t") for _ in range(YOUNG)])
    await conn.execute("ANALYZE job_rows")
    await conn.execute("SET plan_cache_mode = force_generic_plan")  # the plan PostgreSQL keeps, from now
    worker = uuid.uuid4()
    (young,) = await _claim_all(conn, "t", worker)
    await _complete_reading(conn, young[:BATCH])  # planned now, for a table of YOUNG jobs
    for _ in range(0, JOBS, 5_000):  # not by _unanalyzed_backlog: its ALTER TABLE would drop the cached plan
        await Engine(pool).create_dag([JobSpec(job_type="t") for _ in range(5_000)])
    running = [job for batch in await _claim_all(conn, "t", worker) for job in batch]
    assert await _complete_reading(conn, running[:BATCH]) > JOBS  # the young plan reads every job
    report = await StatisticsKeeper(Engine(pool)).run_once()
    assert "job_rows" in report.analyzed and not report.still_outgrown
    read = await _complete_reading(conn, running[BATCH : 2 * BATCH])
    assert read <= READS_PER_JOB * BATCH, f"job rows read by a completion of {BATCH} after the keeper: {read}"
    assert (await StatisticsKeeper(Engine(pool)).run_once()).analyzed == ()  # measured: nothing outgrown now
