"""The job engine: the one door through which every room moves jobs, workers and object events.

Each verb is one short transaction on PostgreSQL (the only place a job lives); several verbs that must
commit together share an :class:`EngineTransaction` (``async with engine.transaction() as tx``).
Transitions are guarded by the status and attempt the caller holds; a guard that matches nothing means
another party (the rescuer, a canceller, a duplicate completion) got there first: it is logged and
reported, never raised. Wake-ups are published only after the transaction commits, by the engine.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple

from conveyor.db import connection
from conveyor.db import jobs as job_queries
from conveyor.db.connection import Connection, Pool, acquire
from conveyor.db.records import CompletionRow, FailureRow, HeldJob, JobFilter, JobRow, JobStatus
from conveyor.db.settings import PostgresSettings
from conveyor.db.values import storable
from conveyor.pipeline.engine import creation
from conveyor.pipeline.engine.browse import Browser
from conveyor.pipeline.engine.creation import DagResult
from conveyor.pipeline.engine.dag import JobSpec, SourceObject
from conveyor.pipeline.engine.errors import JobConflict, JobNotFound
from conveyor.pipeline.engine.flow import FlowLimits
from conveyor.pipeline.engine.maintenance import MaintenanceVerbs
from conveyor.pipeline.engine.objects import ObjectRecords
from conveyor.pipeline.engine.retry import RetryPolicies
from conveyor.pipeline.engine.settings import EngineSettings, RedisSettings
from conveyor.pipeline.engine.stats import QueueStats
from conveyor.pipeline.engine.sweeps import SweepRecords
from conveyor.pipeline.engine.transaction import EngineTransaction
from conveyor.pipeline.engine.wakeup import WakeupPublisher, redis_client
from conveyor.pipeline.engine.workers import WorkerRegistry

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


class FailureKind(StrEnum):
    """Why an attempt failed, as its error-history entry says (``errors[].kind``)."""

    ERROR = "error"  # the handler raised: retried under the job type's policy
    TIMEOUT = "timeout"  # the attempt outlived the job's timeout: retried
    PERMANENT = "permanent"  # retrying cannot help: FAILED now
    WORKER_LOST = "worker_lost"  # the worker stopped heartbeating (written by the rescuer)
    UPSTREAM_FAILED = "upstream_failed"  # a parent ended FAILED or CANCELLED (written with the cancellation)
    OBJECT_REMOVED = "object_removed"  # the job's object was deleted: CANCELLED, not a failure


@dataclass(frozen=True)
class Failure:
    """A failed attempt of a job the caller holds."""

    job: JobRow
    message: str
    kind: FailureKind = FailureKind.ERROR
    retryable: bool = True
    details: dict[str, Any] | None = None


class JobResult(NamedTuple):
    """A held job and what its handler returned."""

    job: JobRow
    result: Any


class Engine:
    """Creates, claims, finishes, cancels, retries and finds jobs; its facets hold the other doors.

    ``engine.workers`` (the worker registry), ``engine.objects`` (recorded events and dead letters),
    ``engine.maintenance`` (rescue, retention, leadership), ``engine.stats`` (queue figures),
    ``engine.sweeps`` (bucket listings: reconciliation and backfills), ``engine.flow`` (the limits
    and weights of concurrency keys and job types) and ``engine.browse`` (pages for operators).
    """

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
        self._ready_watchers: list[Callable[[Sequence[str]], None]] = []
        # With an injected clock every statement uses it; otherwise PostgreSQL's now() decides.
        self._clock = clock
        self.workers = WorkerRegistry(pool)
        self.objects = ObjectRecords(pool)
        self.maintenance = MaintenanceVerbs(pool, now=self.db_now, wake=self._wake)
        self.stats = QueueStats(pool, now=self.db_now)
        self.sweeps = SweepRecords(pool)
        self.flow = FlowLimits(pool, now=self.db_now)
        self.browse = Browser(pool)

    @classmethod
    @asynccontextmanager
    async def open(
        cls, postgres: PostgresSettings, settings: EngineSettings, redis: RedisSettings
    ) -> AsyncIterator[Engine]:
        """An engine on a fresh pool, publishing wake-ups to Redis; everything is closed on exit."""
        pool = await connection.create_pool(postgres)
        client = redis_client(redis)
        wakeup = WakeupPublisher(client, redis)
        try:
            yield cls(pool, retry=settings.retry, lease_grace_seconds=settings.lease_grace_seconds, wakeup=wakeup)
        finally:
            await wakeup.close()
            await client.aclose()
            await pool.close()

    def db_now(self) -> datetime | None:
        return self._clock() if self._clock else None

    def now(self) -> datetime:
        return self._clock() if self._clock else system_clock()

    @contextmanager
    def watching_completions(self, callback: Callable[[Sequence[str]], None]) -> Iterator[None]:
        """Within the block, ``callback(job_types)`` runs in this process after each completion this engine
        wrote that made jobs of ``job_types`` ready (children released, a capped limit's slot freed), before
        the Redis wake-up is even sent."""
        self._ready_watchers.append(callback)
        try:
            yield
        finally:
            self._ready_watchers.remove(callback)

    def _wake(self, job_types: Sequence[str]) -> None:
        if self.wakeup is not None and job_types:
            self.wakeup.notify(job_types)

    async def ping(self) -> None:
        """A real round trip to PostgreSQL, or :class:`~conveyor.db.errors.DatabaseUnavailable`."""
        async with acquire(self.pool) as conn:
            await connection.round_trip(conn)

    # -- transactions and creating ------------------------------------------------------------------

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[EngineTransaction]:
        """Verbs that commit together; the job types they made ready are woken after the commit."""
        async with acquire(self.pool) as conn, conn.transaction():
            tx = EngineTransaction(conn, now=self.db_now())
            yield tx
        self._wake(sorted(set(tx.ready_types)))

    async def create(self, spec: JobSpec, *, source: SourceObject | None = None) -> uuid.UUID:
        """Create one job (its ``depends_on`` are ids of existing jobs); idempotent on its key.

        A job with no parents and no limit to set is one INSERT, atomic by itself: it runs without a
        transaction around it, which would cost two more round trips (``POST /api/jobs``'s hot path).
        """
        if spec.depends_on or spec.concurrency_limit is not None:
            result = await self.create_dag([spec], source=source)
            return next(iter(result.ids.values()))
        async with acquire(self.pool) as conn:
            created = await creation.create_one(conn, spec, source=source, now=self.db_now())
        self._wake(created.ready_types)
        return next(iter(created.dag.ids.values()))

    async def create_dag(
        self, specs: Sequence[JobSpec], *, source: SourceObject | None = None, pipeline: str | None = None
    ) -> DagResult:
        """Create jobs and their dependencies in one transaction; repeat calls with the same keys create nothing."""
        async with self.transaction() as tx:
            return await tx.create_dag(specs, source=source, pipeline=pipeline)

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
        r"""Extend the leases of ``held`` jobs (:class:`HeldJob`\ s); {id: stop requested} for those still ours."""
        if not held:
            return {}
        rows = [HeldJob(*h) for h in held]
        async with acquire(self.pool) as conn:
            return await job_queries.extend_leases(
                conn, rows, lease_grace_seconds=self.lease_grace_seconds, now=self.db_now()
            )

    async def heartbeat_worker(self, worker_id: uuid.UUID) -> dict[uuid.UUID, bool]:
        """Extend every lease an (HTTP) worker holds; {job id: stop requested}."""
        async with acquire(self.pool) as conn:
            return await job_queries.extend_leases_of_worker(
                conn, worker_id, lease_grace_seconds=self.lease_grace_seconds, now=self.db_now()
            )

    async def complete(self, job: JobRow, result: Any) -> bool:
        """Complete a held job; False (logged) if it is no longer held at that attempt."""
        return job.id in await self.complete_many([JobResult(job, result)])

    async def complete_held(self, job_id: uuid.UUID, worker_id: uuid.UUID | None, result: Any) -> bool:
        """Complete the attempt ``worker_id`` holds of a RUNNING job (any worker's when None), in one statement.

        False (logged) when the job is not RUNNING for that worker: the HTTP API's completion, which names the
        job and its worker but not the attempt, and reads the job only to explain a refusal.
        """
        completed = await self._write_completions([CompletionRow(job_id, None, result)], worker_id=worker_id)
        if not completed:
            log.info("complete of job %s for worker %s changed nothing: it is not RUNNING for it", job_id, worker_id)
        return job_id in completed

    async def complete_many(self, done: Sequence[tuple[JobRow, Any]]) -> set[uuid.UUID]:
        r"""Complete held jobs (:class:`JobResult`\ s) and release their ready children, in one transaction.

        Returns the ids completed; a job no longer held at its attempt is logged and left alone.
        """
        if not done:
            return set()
        completed = await self._write_completions([CompletionRow(job.id, job.attempts, result) for job, result in done])
        _log_stale("complete", [job for job, _ in done], completed)
        return completed

    async def _write_completions(
        self, rows: Sequence[CompletionRow], *, worker_id: uuid.UUID | None = None
    ) -> set[uuid.UUID]:
        """Run ``job_complete_many`` and wake the types it made ready or freed; the ids completed."""
        async with acquire(self.pool) as conn:
            outcome = await job_queries.complete_many(conn, rows, worker_id=worker_id, now=self.db_now())
        ready = sorted(set(outcome.released.values()) | outcome.freed_types)
        if ready:
            for watcher in self._ready_watchers:
                watcher(ready)
        self._wake(ready)
        return outcome.completed

    async def fail(self, failure: Failure) -> JobStatus | None:
        """Record one failed attempt; the job's new status, or None if it was no longer held."""
        return (await self.fail_many([failure])).get(failure.job.id)

    async def fail_many(self, failures: Sequence[Failure]) -> dict[uuid.UUID, JobStatus]:
        """Record failed attempts: retry with backoff, or FAILED (cancelling descendants) when out of retries."""
        if not failures:
            return {}
        now = self.now()
        rows = [
            FailureRow(f.job.id, f.job.attempts, self._error_entry(f, now), self._retry_at(f, now)) for f in failures
        ]
        async with acquire(self.pool) as conn, conn.transaction():
            attempts = await job_queries.fail_many(conn, rows, now=self.db_now())
            failed = [job_id for job_id, status in attempts.statuses.items() if status is JobStatus.FAILED]
            if failed:
                await job_queries.cancel_descendants(conn, failed, now=self.db_now())
        _log_stale("fail", [f.job for f in failures], set(attempts.statuses))
        self._wake(sorted(attempts.freed_types))
        return attempts.statuses

    def _retry_at(self, failure: Failure, now: datetime) -> datetime | None:
        if not failure.retryable or failure.job.retries_left <= 0:
            return None
        return self.retry_policies.for_type(failure.job.job_type).next_attempt_at(failure.job.attempts, now)

    @staticmethod
    def _error_entry(failure: Failure, now: datetime) -> dict[str, Any]:
        entry = {
            "at": now.isoformat(),
            "attempt": failure.job.attempts,
            "kind": failure.kind.value,
            "message": failure.message,
        }
        # An error message may quote the very input PostgreSQL refuses (a NUL in a header...).
        return storable({**(failure.details or {}), **entry})  # type: ignore[no-any-return]

    async def requeue(self, held: Sequence[JobRow], *, delay_seconds: float = 0.0) -> set[uuid.UUID]:
        """Hand held jobs back unrun, without spending their attempt (shutdown, or a handler's "retry later").

        They run again after ``delay_seconds``; returns the ids requeued.
        """
        if not held:
            return set()
        run_at = self.now() + timedelta(seconds=delay_seconds) if delay_seconds > 0 else None
        rows = [HeldJob(job.id, job.attempts) for job in held]
        async with acquire(self.pool) as conn:
            requeued = await job_queries.requeue_many(conn, rows, run_at=run_at, now=self.db_now())
        _log_stale("requeue", held, requeued)
        if run_at is None:
            self._wake(sorted({job.job_type for job in held if job.id in requeued}))
        return requeued

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

    async def object_gone(self, job: JobRow, message: str) -> bool:
        """The held job's object no longer exists: CANCELLED (kind ``object_removed``), never FAILED, with
        its descendants. False (logged) if the job was no longer held at that attempt."""
        kind = FailureKind.OBJECT_REMOVED.value
        async with acquire(self.pool) as conn, conn.transaction():
            done = await job_queries.cancel_running(conn, job.id, job.attempts, kind=kind, message=message,
                                                    now=self.db_now())  # fmt: skip
            if done:
                await job_queries.cancel_descendants(conn, [job.id], kind=kind, message=message, now=self.db_now())
        _log_stale("cancel", [job], {job.id} if done else set())
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


def _log_stale(verb: str, jobs: Sequence[JobRow], applied: set[uuid.UUID]) -> None:
    for job in jobs:
        if job.id not in applied:
            log.warning(
                "%s of job %s attempt %d changed nothing: it was rescued, cancelled or finished by someone else",
                verb,
                job.id,
                job.attempts,
            )
