"""The ``jobs``, ``job_dependencies`` and ``state_snapshots`` tables: one function per named statement.

Each function takes the connection to run on (so the caller owns the transaction) and returns plain
values or frozen row dataclasses. ``now`` is None in production and a fixed time in tests.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from conveyor.db.connection import Connection, translate_errors
from conveyor.db.records import (
    CancelledJob,
    Completion,
    CompletionRow,
    Depth,
    FailedAttempts,
    FailureRow,
    HeldJob,
    JobFilter,
    JobRow,
    JobStatus,
    NewJob,
    PipelineRun,
    Removal,
    Rescued,
)
from conveyor.db.sql import QUERIES

#: From this many jobs up, a batch with no idempotency key and no start time is copied into the table
#: (binary COPY) instead of inserted from one JSON document: no key can conflict and every column is
#: known here, and COPY is what bulk enqueue is measured against (bench/RESULTS.md).
COPY_FROM_JOBS = 100
#: The columns a COPY writes: :class:`NewJob`'s fields up to ``run_at``, which the copy leaves to its default.
#: asyncpg reads a record's first ``len(columns)`` items, so each ``NewJob`` is copied as it is: its last two
#: fields (``run_at``, ``idempotency_key``, None on this path) are never read. Slicing each one to fit was a
#: tuple per job: 0.4 to 0.7 us of Python per job in three runs (0.1 us with the garbage collector off).
_ROW_COLUMNS = NewJob._fields[: NewJob._fields.index("run_at")]


async def insert_many(conn: Connection, jobs: Sequence[NewJob], *, now: datetime | None = None) -> set[uuid.UUID]:
    """Insert ``jobs``; return the ids inserted (those whose idempotency key exists already are not)."""
    if copied(jobs, now=now):
        with translate_errors():
            await conn.copy_records_to_table("job_rows", records=jobs, columns=_ROW_COLUMNS)
        return {j.id for j in jobs}  # run_at and created_at take their default, the transaction's time
    return await _insert_documents(conn, [j._asdict() for j in jobs], now=now)


async def insert_one(conn: Connection, job: NewJob, *, now: datetime | None = None) -> bool:
    """Insert ``job`` in one statement; False when a job with its idempotency key exists already."""
    with translate_errors():
        inserted = await conn.fetchval(QUERIES["job_insert_one"], *job, now)
    return inserted is not None


def copied(jobs: Sequence[NewJob], *, now: datetime | None) -> bool:
    """Whether :func:`insert_many` copies ``jobs`` (see ``COPY_FROM_JOBS``) rather than inserting them."""
    return len(jobs) >= COPY_FROM_JOBS and now is None and not any(j.idempotency_key or j.run_at for j in jobs)


async def _insert_documents(
    conn: Connection, documents: Sequence[Mapping[str, Any]], *, now: datetime | None = None
) -> set[uuid.UUID]:
    """Insert jobs given as documents of ``job_insert_many``'s shape (a key left out is null); the ids inserted."""
    with translate_errors():
        return {r["id"] for r in await conn.fetch(QUERIES["job_insert_many"], documents, now)}


async def ids_by_keys(conn: Connection, keys: Sequence[str]) -> dict[str, uuid.UUID]:
    with translate_errors():
        return {r["idempotency_key"]: r["id"] for r in await conn.fetch(QUERIES["job_ids_by_keys"], list(keys))}


async def lock_parents(conn: Connection, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, JobStatus]:
    """Share-lock existing jobs ``ids``; return their statuses (a missing id does not exist)."""
    with translate_errors():
        return {r["id"]: JobStatus(r["status"]) for r in await conn.fetch(QUERIES["job_lock_parents"], list(ids))}


async def insert_dependencies(conn: Connection, parents: Sequence[uuid.UUID], children: Sequence[uuid.UUID]) -> None:
    """Insert the edges ``parents[i] -> children[i]``."""
    with translate_errors():
        await conn.execute(QUERIES["dependency_insert_many"], parents, children)


async def settle_dependencies(
    conn: Connection, ids: Sequence[uuid.UUID], *, now: datetime | None = None
) -> dict[uuid.UUID, JobStatus]:
    """Recount parents of ``ids``; return their new statuses (only jobs that have parents)."""
    with translate_errors():
        rows = await conn.fetch(QUERIES["job_settle_dependencies"], list(ids), now)
    return {r["id"]: JobStatus(r["status"]) for r in rows}


async def raise_ancestor_priority(conn: Connection, ids: Sequence[uuid.UUID]) -> None:
    with translate_errors():
        await conn.execute(QUERIES["job_raise_ancestor_priority"], list(ids))


async def claim(
    conn: Connection,
    *,
    job_types: Sequence[str],
    worker_id: uuid.UUID,
    limit: int,
    lease_grace_seconds: float,
    now: datetime | None = None,
) -> list[JobRow]:
    """Claim up to ``limit`` ready jobs in one statement (priority, then run_at, then age)."""
    with translate_errors():
        rows = await conn.fetch(QUERIES["job_claim"], list(job_types), worker_id, limit, lease_grace_seconds, now)
    return [JobRow.from_record(r) for r in rows]


async def extend_leases(
    conn: Connection,
    held: Sequence[HeldJob],
    *,
    lease_grace_seconds: float,
    now: datetime | None = None,
) -> dict[uuid.UUID, bool]:
    """Extend the leases of ``held`` jobs; return {id: cancel_requested} for those still held."""
    with translate_errors():
        rows = await conn.fetch(
            QUERIES["job_extend_leases"], [h.id for h in held], [h.attempt for h in held], lease_grace_seconds, now
        )
    return {r["id"]: r["cancel_requested"] for r in rows}


async def complete_many(
    conn: Connection,
    done: Sequence[CompletionRow],
    *,
    worker_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> Completion:
    """Complete jobs still RUNNING at their attempt (and held by ``worker_id`` when given); release their ready
    children. A row without an attempt completes whichever attempt ``worker_id`` holds."""
    with translate_errors():
        rows = await conn.fetch(
            QUERIES["job_complete_many"], [d.id for d in done], [d.attempt for d in done], [d.result for d in done],
            now, worker_id,
        )  # fmt: skip
    return Completion(
        completed={r["id"] for r in rows if r["outcome"] == "completed"},
        released={r["id"]: r["job_type"] for r in rows if r["outcome"] == "released"},
        freed_types={r["job_type"] for r in rows if r["outcome"] == "freed"},
    )


async def fail_many(
    conn: Connection,
    failures: Sequence[FailureRow],
    *,
    now: datetime | None = None,
) -> FailedAttempts:
    """Record failed attempts: the new status of each one applied, and the types that freed a capped slot."""
    f = failures
    with translate_errors():
        rows = await conn.fetch(
            QUERIES["job_fail_many"],
            [x.id for x in f], [x.attempt for x in f], [x.error for x in f], [x.retry_at for x in f], now,
        )  # fmt: skip
    return FailedAttempts(
        statuses={r["id"]: JobStatus(r["status"]) for r in rows},
        freed_types={r["job_type"] for r in rows if r["frees_limit"]},
    )


async def requeue_many(
    conn: Connection,
    held: Sequence[HeldJob],
    *,
    run_at: datetime | None = None,
    now: datetime | None = None,
) -> set[uuid.UUID]:
    """Return ``held`` jobs to PENDING without spending the attempt (requeued), runnable from ``run_at``."""
    with translate_errors():
        rows = await conn.fetch(
            QUERIES["job_requeue_many"], [h.id for h in held], [h.attempt for h in held], run_at, now
        )
    return {r["id"] for r in rows}


async def cancel(conn: Connection, job_id: uuid.UUID, *, reason: str, now: datetime | None = None) -> JobStatus | None:
    """Cancel (or ask a RUNNING job to stop); the status after, or None if the job was already final."""
    with translate_errors():
        row = await conn.fetchrow(QUERIES["job_cancel"], job_id, reason, now)
    return None if row is None else JobStatus(row["status"])


async def cancel_running(
    conn: Connection,
    job_id: uuid.UUID,
    attempt: int,
    *,
    kind: str | None = None,
    message: str | None = None,
    now: datetime | None = None,
) -> bool:
    """CANCELLED from RUNNING at ``attempt``; the entry says ``kind``/``message``, else the request's reason."""
    with translate_errors():
        return await conn.fetchval(QUERIES["job_cancel_running"], job_id, attempt, now, kind, message) is not None


async def cancel_descendants(
    conn: Connection,
    roots: Sequence[uuid.UUID],
    *,
    kind: str | None = None,
    message: str | None = None,
    now: datetime | None = None,
) -> set[uuid.UUID]:
    """Cancel the unfinished descendants of ``roots``: ``upstream_failed``, or ``kind`` with ``message``."""
    with translate_errors():
        rows = await conn.fetch(QUERIES["job_cancel_descendants"], list(roots), now, kind, message)
    return {r["id"] for r in rows}


async def cancel_for_removed(
    conn: Connection, removals: Sequence[Removal], *, now: datetime | None = None
) -> list[CancelledJob]:
    """Cancel (or ask to stop) the unfinished jobs of removed objects; the jobs changed."""
    documents = [
        {"bucket": r.bucket, "object_key": r.key, "version_id": r.version_id, "any_version": r.any_version,
         "removed_at": r.removed_at, "message": r.message}
        for r in removals
    ]  # fmt: skip
    with translate_errors():
        rows = await conn.fetch(QUERIES["jobs_cancel_for_removed"], documents, now)
    return [CancelledJob(r["id"], JobStatus(r["status"]), r["job_type"]) for r in rows]


async def retry(conn: Connection, job_id: uuid.UUID, *, now: datetime | None = None) -> bool:
    with translate_errors():
        return await conn.fetchval(QUERIES["job_retry"], job_id, now) is not None


async def reblock_descendants(conn: Connection, job_id: uuid.UUID) -> set[uuid.UUID]:
    with translate_errors():
        return {r["id"] for r in await conn.fetch(QUERIES["job_reblock_descendants"], job_id)}


async def rescue_expired(conn: Connection, *, limit: int, now: datetime | None = None) -> list[Rescued]:
    with translate_errors():
        rows = await conn.fetch(QUERIES["job_rescue_expired"], limit, now)
    return [Rescued(r["id"], JobStatus(r["status"]), r["job_type"]) for r in rows]


async def expire_leases_of_workers(
    conn: Connection, worker_ids: Sequence[uuid.UUID], *, now: datetime | None = None
) -> set[uuid.UUID]:
    with translate_errors():
        return {r["id"] for r in await conn.fetch(QUERIES["job_expire_leases_of_workers"], list(worker_ids), now)}


async def get(conn: Connection, job_id: uuid.UUID) -> JobRow | None:
    with translate_errors():
        row = await conn.fetchrow(QUERIES["job_get"], job_id)
    return None if row is None else JobRow.from_record(row)


async def list_jobs(
    conn: Connection, where: JobFilter, *, before: uuid.UUID | None = None, limit: int = 50
) -> list[JobRow]:
    """Newest first; pass the last id of a page as ``before`` to get the next one."""
    with translate_errors():
        rows = await conn.fetch(
            QUERIES["job_list"],
            where.status,
            where.job_type,
            where.source_bucket,
            where.source_key,
            where.since,
            before,
            limit,
        )
    return [JobRow.from_record(r) for r in rows]


async def parent_results(conn: Connection, job_id: uuid.UUID) -> list[dict[str, Any]]:
    with translate_errors():
        return [dict(r) for r in await conn.fetch(QUERIES["job_parent_results"], job_id)]


async def depth(conn: Connection, *, now: datetime | None = None) -> list[Depth]:
    with translate_errors():
        rows = await conn.fetch(QUERIES["job_depth"], now)
    return [Depth(JobStatus(r["status"]), r["job_type"], r["jobs"], r["oldest_ready_seconds"]) for r in rows]


async def ready_backlog(conn: Connection, job_types: Collection[str]) -> int:
    """Ready jobs of ``job_types`` (every type when empty): the autoscaling query, shared with the Helm chart."""
    with translate_errors():
        ready: int = await conn.fetchval(QUERIES["job_ready_backlog"], list(job_types))
    return ready


async def running_count(conn: Connection, job_types: Collection[str]) -> int:
    """RUNNING jobs of ``job_types`` (every type when empty): what the built-in autoscaler retires on."""
    with translate_errors():
        running: int = await conn.fetchval(QUERIES["job_running_count"], list(job_types))
    return running


async def prune(conn: Connection, *, finished_before: datetime, failed_before: datetime, limit: int) -> int:
    """Delete up to ``limit`` old finished jobs; the count deleted."""
    with translate_errors():
        status = await conn.execute(QUERIES["job_prune"], finished_before, failed_before, limit)
    return int(status.split()[-1])


async def save_snapshot(conn: Connection, job_id: uuid.UUID, attempt: int, state: Any) -> bool:
    """Store a checkpoint for the attempt that holds the job; False if that attempt no longer does."""
    with translate_errors():
        return await conn.fetchval(QUERIES["snapshot_save"], job_id, attempt, state) is not None


async def get_snapshot(conn: Connection, job_id: uuid.UUID) -> Any:
    """The latest checkpoint's state, or None."""
    with translate_errors():
        row = await conn.fetchrow(QUERIES["snapshot_get"], job_id)
    return None if row is None else row["state"]


async def extend_leases_of_worker(
    conn: Connection, worker_id: uuid.UUID, *, lease_grace_seconds: float, now: datetime | None = None
) -> dict[uuid.UUID, bool]:
    """Extend every lease ``worker_id`` holds; {job id: stop requested}."""
    with translate_errors():
        rows = await conn.fetch(QUERIES["job_extend_leases_of_worker"], worker_id, lease_grace_seconds, now)
    return {r["id"]: r["cancel_requested"] for r in rows}


async def running_past_lease(conn: Connection) -> int:
    with translate_errors():
        count: int = await conn.fetchval(QUERIES["job_running_past_lease"])
    return count


async def finished_pipeline_runs(conn: Connection, *, after: datetime, until: datetime) -> list[PipelineRun]:
    """Pipeline runs whose last job finished in (``after``, ``until``], oldest first."""
    with translate_errors():
        rows = await conn.fetch(QUERIES["pipeline_runs_finished"], after, until)
    return [
        PipelineRun(r["bucket"], r["object_key"], r["pipeline"], r["jobs"], r["completed"], r["failed"],
                    r["cancelled"], r["uploaded_at"], r["finished_at"])
        for r in rows
    ]  # fmt: skip
