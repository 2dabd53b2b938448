"""The job engine: every verb the workers, the ingestor and the HTTP API use to move jobs.

Each verb is one short transaction on PostgreSQL (the only place a job lives). Transitions are guarded
by the status and attempt the caller holds; a guard that matches nothing means another party (the
rescuer, a canceller, a duplicate completion) got there first: it is logged and reported, never raised.
Wake-ups are published only after the transaction commits.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from conveyor.db import jobs as job_queries
from conveyor.db.connection import Connection, Pool, acquire
from conveyor.db.jobs import JobFilter, JobRow, JobStatus, NewJob
from conveyor.db.values import storable
from conveyor.pipeline.engine.dag import JobSpec, SourceObject, inherited_priorities, topological_order
from conveyor.pipeline.engine.errors import JobConflict, JobNotFound, UnknownParent
from conveyor.pipeline.engine.ids import uuid7
from conveyor.pipeline.engine.retry import RetryPolicies
from conveyor.pipeline.engine.wakeup import WakeupPublisher

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Failure:
    """A failed attempt of a job the caller holds."""

    job: JobRow
    message: str
    kind: str = "error"  # error | timeout | permanent
    retryable: bool = True
    details: dict[str, Any] | None = None


@dataclass(frozen=True)
class DagResult:
    """The ids of a DAG's jobs by name (or position), and whether this call created them."""

    ids: dict[str, uuid.UUID]
    created: bool


class Engine:
    """Creates, claims, finishes, cancels, retries and finds jobs."""

    def __init__(
        self,
        pool: Pool,
        *,
        retry: RetryPolicies | None = None,
        lease_grace_seconds: float = 30.0,
        wakeup: WakeupPublisher | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.pool = pool
        self.retry_policies = retry or RetryPolicies()
        self.lease_grace_seconds = lease_grace_seconds
        self.wakeup = wakeup
        # With an injected clock every statement uses it; otherwise PostgreSQL's now() decides.
        self._clock = clock

    def db_now(self) -> datetime | None:
        return self._clock() if self._clock else None

    def now(self) -> datetime:
        return self._clock() if self._clock else system_clock()

    def _wake(self, job_types: Sequence[str]) -> None:
        if self.wakeup is not None and job_types:
            self.wakeup.notify(job_types)

    # -- creating ------------------------------------------------------------------------------------

    async def create(self, spec: JobSpec, *, source: SourceObject | None = None) -> uuid.UUID:
        """Create one job (its ``depends_on`` are ids of existing jobs); idempotent on its key."""
        result = await self.create_dag([spec], source=source)
        return next(iter(result.ids.values()))

    async def create_dag(
        self, specs: Sequence[JobSpec], *, source: SourceObject | None = None, pipeline: str | None = None
    ) -> DagResult:
        """Create jobs and their dependencies in one transaction; repeat calls with the same keys create nothing."""
        async with acquire(self.pool) as conn, conn.transaction():
            result, ready_types = await self.create_dag_in(conn, specs, source=source, pipeline=pipeline)
        self._wake(ready_types)
        return result

    async def create_dag_in(
        self,
        conn: Connection,
        specs: Sequence[JobSpec],
        *,
        source: SourceObject | None = None,
        pipeline: str | None = None,
    ) -> tuple[DagResult, list[str]]:
        """:meth:`create_dag` inside the caller's transaction; also returns the job types made ready.

        The caller must publish the wake-up (``engine.notify_ready``) after its transaction commits.
        """
        order = topological_order(specs)
        priorities = inherited_priorities(specs, order)
        names = [spec.name or str(i) for i, spec in enumerate(specs)]
        ids = [uuid7() for _ in specs]
        by_name = dict(zip(names, ids, strict=True))
        rows = [_new_job(specs[i], ids[i], priorities[i], pipeline, source) for i in order]
        inserted = await job_queries.insert_many(conn, rows, now=self.db_now())
        if inserted != set(ids):
            by_name = await self._resolve_existing(conn, specs, names, by_name, inserted)
        new_children = [i for i in order if ids[i] in inserted and specs[i].depends_on]
        linked_outside = await self._link(conn, specs, names, by_name, new_children, inserted)
        ready = [specs[i].job_type for i in order if ids[i] in inserted and not specs[i].depends_on]
        if linked_outside:
            # Only children of pre-existing jobs need a recount: a parent created just now is unfinished.
            outside_ids = [ids[i] for i in linked_outside]
            settled = await job_queries.settle_dependencies(conn, outside_ids, now=self.db_now())
            ready += [specs[ids.index(j)].job_type for j, status in settled.items() if status is JobStatus.PENDING]
            if cancelled := [j for j, status in settled.items() if status is JobStatus.CANCELLED]:
                await job_queries.cancel_descendants(conn, cancelled, now=self.db_now())
            await job_queries.raise_ancestor_priority(conn, outside_ids)
        return DagResult(ids=by_name, created=bool(inserted)), ready

    def notify_ready(self, job_types: Sequence[str]) -> None:
        """Publish a wake-up for jobs made ready by a transaction that has now committed."""
        self._wake(job_types)

    async def _resolve_existing(
        self,
        conn: Connection,
        specs: Sequence[JobSpec],
        names: list[str],
        by_name: dict[str, uuid.UUID],
        inserted: set[uuid.UUID],
    ) -> dict[str, uuid.UUID]:
        keys = [s.idempotency_key for s, n in zip(specs, names, strict=True) if by_name[n] not in inserted]
        existing = await job_queries.ids_by_keys(conn, [k for k in keys if k])
        resolved = dict(by_name)
        for spec, name in zip(specs, names, strict=True):
            if by_name[name] not in inserted and spec.idempotency_key in existing:
                resolved[name] = existing[spec.idempotency_key]
        return resolved

    async def _link(
        self,
        conn: Connection,
        specs: Sequence[JobSpec],
        names: list[str],
        by_name: dict[str, uuid.UUID],
        children: list[int],
        inserted: set[uuid.UUID],
    ) -> list[int]:
        """Insert the new children's edges; return the children with a parent that existed before this call.

        Those parents are share-locked first (and must exist), so none can finish unseen before we commit.
        """
        edges, outside_children = [], []
        for i in children:
            parents = [by_name[p] if isinstance(p, str) else p for p in specs[i].depends_on]
            edges += [(parent, by_name[names[i]]) for parent in parents]
            if any(parent not in inserted for parent in parents):
                outside_children.append(i)
        outside = sorted({parent for parent, _ in edges if parent not in inserted})
        if outside:
            found = await job_queries.lock_parents(conn, outside)
            if missing := [str(p) for p in outside if p not in found]:
                raise UnknownParent(f"unknown parent job(s): {', '.join(missing)}")
        if edges:
            await job_queries.insert_dependencies(conn, edges)
        return outside_children

    # -- running -------------------------------------------------------------------------------------

    async def claim(self, worker_id: uuid.UUID, *, job_types: Sequence[str] = (), limit: int = 1) -> list[JobRow]:
        """Claim up to ``limit`` ready jobs of ``job_types`` (any type when empty) in one statement."""
        async with acquire(self.pool) as conn:
            return await job_queries.claim(
                conn,
                job_types=job_types,
                worker_id=worker_id,
                limit=limit,
                lease_grace_seconds=self.lease_grace_seconds,
                now=self.db_now(),
            )

    async def heartbeat(self, held: Sequence[tuple[uuid.UUID, int]]) -> dict[uuid.UUID, bool]:
        """Extend the leases of held (id, attempt) jobs; {id: stop requested} for those still ours."""
        if not held:
            return {}
        async with acquire(self.pool) as conn:
            return await job_queries.extend_leases(
                conn, held, lease_grace_seconds=self.lease_grace_seconds, now=self.db_now()
            )

    async def heartbeat_worker(self, worker_id: uuid.UUID) -> dict[uuid.UUID, bool]:
        """Extend every lease an (HTTP) worker holds; {job id: stop requested}."""
        async with acquire(self.pool) as conn:
            return await job_queries.extend_leases_of_worker(
                conn, worker_id, lease_grace_seconds=self.lease_grace_seconds, now=self.db_now()
            )

    async def complete(self, job: JobRow, result: Any) -> bool:
        """Complete a held job; False (logged) if it is no longer held at that attempt."""
        return job.id in await self.complete_many([(job, result)])

    async def complete_many(self, done: Sequence[tuple[JobRow, Any]]) -> set[uuid.UUID]:
        """Complete held jobs and release their ready children, in one transaction; the ids completed."""
        if not done:
            return set()
        async with acquire(self.pool) as conn:
            outcome = await job_queries.complete_many(
                conn, [(job.id, job.attempts, result) for job, result in done], now=self.db_now()
            )
        _log_stale("complete", [job for job, _ in done], outcome.completed)
        self._wake(sorted(set(outcome.released.values())))
        return outcome.completed

    async def fail(self, failure: Failure) -> JobStatus | None:
        """Record one failed attempt; the job's new status, or None if it was no longer held."""
        return (await self.fail_many([failure])).get(failure.job.id)

    async def fail_many(self, failures: Sequence[Failure]) -> dict[uuid.UUID, JobStatus]:
        """Record failed attempts: retry with backoff, or FAILED (cancelling descendants) when out of retries."""
        if not failures:
            return {}
        now = self.now()
        rows = [(f.job.id, f.job.attempts, self._error_entry(f, now), self._retry_at(f, now)) for f in failures]
        async with acquire(self.pool) as conn, conn.transaction():
            statuses = await job_queries.fail_many(conn, rows, now=self.db_now())
            failed = [job_id for job_id, status in statuses.items() if status is JobStatus.FAILED]
            if failed:
                await job_queries.cancel_descendants(conn, failed, now=self.db_now())
        _log_stale("fail", [f.job for f in failures], set(statuses))
        return statuses

    def _retry_at(self, failure: Failure, now: datetime) -> datetime | None:
        if not failure.retryable or failure.job.retries_left <= 0:
            return None
        return self.retry_policies.for_type(failure.job.job_type).next_attempt_at(failure.job.attempts, now)

    @staticmethod
    def _error_entry(failure: Failure, now: datetime) -> dict[str, Any]:
        entry = {
            "at": now.isoformat(),
            "attempt": failure.job.attempts,
            "kind": failure.kind,
            "message": failure.message,
        }
        # An error message may quote the very input PostgreSQL refuses (a NUL in a header...).
        return storable({**(failure.details or {}), **entry})  # type: ignore[no-any-return]

    async def release(self, held: Sequence[JobRow], *, delay_seconds: float = 0.0) -> set[uuid.UUID]:
        """Give held jobs back without spending their attempt (shutdown, or a handler's "retry later").

        They run again after ``delay_seconds``; returns the ids released.
        """
        if not held:
            return set()
        run_at = self.now() + timedelta(seconds=delay_seconds) if delay_seconds > 0 else None
        async with acquire(self.pool) as conn:
            released = await job_queries.release_many(
                conn, [(job.id, job.attempts) for job in held], run_at=run_at, now=self.db_now()
            )
        _log_stale("release", held, released)
        if run_at is None:
            self._wake(sorted({job.job_type for job in held if job.id in released}))
        return released

    async def parent_results(self, job_id: uuid.UUID) -> list[dict[str, Any]]:
        """What the job's parents returned: [{id, step, job_type, status, result}]."""
        async with acquire(self.pool) as conn:
            return await job_queries.parent_results(conn, job_id)

    async def checkpoint(self, job: JobRow, state: Any) -> bool:
        """Save progress a retried attempt can resume from; False if the attempt no longer holds the job."""
        async with acquire(self.pool) as conn:
            return await job_queries.save_snapshot(conn, job.id, job.attempts, state)

    async def last_checkpoint(self, job_id: uuid.UUID) -> Any:
        async with acquire(self.pool) as conn:
            return await job_queries.get_snapshot(conn, job_id)

    # -- operators -----------------------------------------------------------------------------------

    async def cancel(self, job_id: uuid.UUID, *, reason: str = "cancelled by request") -> JobStatus:
        """Cancel a job (a RUNNING one is asked to stop at its next heartbeat) and its unfinished descendants."""
        async with acquire(self.pool) as conn, conn.transaction():
            status = await job_queries.cancel(conn, job_id, reason=reason, now=self.db_now())
            if status is None:
                return await self._final_status(conn, job_id, "cancel")
            if status is JobStatus.CANCELLED:
                await job_queries.cancel_descendants(conn, [job_id], now=self.db_now())
        return status

    async def acknowledge_cancel(self, job: JobRow) -> bool:
        """The worker stopped a job it was asked to stop: CANCELLED, with its descendants."""
        async with acquire(self.pool) as conn, conn.transaction():
            done = await job_queries.cancel_running(conn, job.id, job.attempts, now=self.db_now())
            if done:
                await job_queries.cancel_descendants(conn, [job.id], now=self.db_now())
        return done

    async def retry(self, job_id: uuid.UUID) -> JobStatus:
        """Run a FAILED or CANCELLED job again with a fresh retry budget; its cancelled descendants wait again."""
        async with acquire(self.pool) as conn, conn.transaction():
            if not await job_queries.retry(conn, job_id, now=self.db_now()):
                status = await self._final_status(conn, job_id, "retry")
                raise JobConflict(f"job {job_id} is {status}; only FAILED or CANCELLED jobs can be retried")
            settled = await job_queries.settle_dependencies(conn, [job_id], now=self.db_now())
            reblocked = await job_queries.reblock_descendants(conn, job_id)
            if reblocked:
                again = await job_queries.settle_dependencies(conn, list(reblocked), now=self.db_now())
                if cancelled := [j for j, s in again.items() if s is JobStatus.CANCELLED]:
                    await job_queries.cancel_descendants(conn, cancelled, now=self.db_now())
            job = await job_queries.get(conn, job_id)
        assert job is not None
        if job.status is JobStatus.PENDING:
            self._wake([job.job_type])
        return settled.get(job_id, job.status)

    async def _final_status(self, conn: Connection, job_id: uuid.UUID, verb: str) -> JobStatus:
        job = await job_queries.get(conn, job_id)
        if job is None:
            raise JobNotFound(job_id)
        log.info("%s of job %s changed nothing: it is %s", verb, job_id, job.status)
        return job.status

    async def get(self, job_id: uuid.UUID) -> JobRow:
        async with acquire(self.pool) as conn:
            job = await job_queries.get(conn, job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    async def list_jobs(self, where: JobFilter, *, before: uuid.UUID | None = None, limit: int = 50) -> list[JobRow]:
        async with acquire(self.pool) as conn:
            return await job_queries.list_jobs(conn, where, before=before, limit=limit)


def _new_job(
    spec: JobSpec, job_id: uuid.UUID, priority: int, pipeline: str | None, source: SourceObject | None
) -> NewJob:
    pipeline, source = spec.pipeline or pipeline, spec.source or source
    return NewJob(
        id=job_id,
        job_type=spec.job_type,
        payload=spec.payload,
        priority=priority,
        max_retries=spec.max_retries,
        timeout_ms=spec.timeout_ms,
        run_at=spec.run_at,
        idempotency_key=spec.idempotency_key,
        parent_count=len(spec.depends_on),
        pipeline=pipeline,
        step=spec.step or spec.name,
        object_event_id=source.event_id if source else None,
        source_bucket=source.bucket if source else None,
        source_key=source.key if source else None,
        source_version=source.version if source else None,
    )


def _log_stale(verb: str, jobs: Sequence[JobRow], applied: set[uuid.UUID]) -> None:
    for job in jobs:
        if job.id not in applied:
            log.warning(
                "%s of job %s attempt %d changed nothing: it was rescued, cancelled or finished by someone else",
                verb,
                job.id,
                job.attempts,
            )
