"""/api/jobs: create, read, list, acquire (long-poll), complete, fail, cancel, retry."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from conveyor.api.context import ApiContext, context_of
from conveyor.api.models import (
    Acquire,
    Complete,
    CreateJob,
    Fail,
    JobBody,
    JobCreated,
    JobPage,
    JobStatusName,
    Outcome,
    Problem,
    StorableText,
    UtcDatetime,
)  # fmt: skip
from conveyor.db.records import JobFilter, JobRow, JobStatus
from conveyor.pipeline.engine import Engine, Failure, FailureKind
from conveyor.pipeline.engine.dag import JobSpec
from conveyor.pipeline.lifecycle.waiting import wait_for_event

router = APIRouter(prefix="/api/jobs", tags=["jobs"])
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "The job is not RUNNING for that worker (stale or rescued)"}
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": "No job has that id"}}
POLL_SECONDS = 0.25


@router.post("", status_code=status.HTTP_201_CREATED, response_model=JobCreated, responses=NOT_FOUND)
async def create_job(body: CreateJob, request: Request) -> JobCreated:
    """Create a job; ``dependsOn`` names existing jobs (404 when one does not exist)."""
    return await create(context_of(request).engine, body)


async def create(engine: Engine, body: CreateJob) -> JobCreated:
    """What :func:`create_job` does, for FastAPI's route and the fast path (conveyor.api.fast_path) alike."""
    spec = JobSpec(
        job_type=body.job_type, payload=body.payload, priority=body.priority, max_retries=body.max_retries,
        timeout_ms=body.timeout_ms, depends_on=body.depends_on, run_at=body.run_at,
        idempotency_key=body.idempotency_key, concurrency_key=body.concurrency_key,
        concurrency_limit=body.concurrency_limit,
    )  # fmt: skip
    return JobCreated(job_id=await engine.create(spec))


@router.get("", response_model=JobPage)
async def list_jobs(
    request: Request,
    status_: Annotated[JobStatusName | None, Query(alias="status")] = None,
    job_type: Annotated[StorableText | None, Query(alias="jobType", max_length=200)] = None,
    bucket: Annotated[StorableText | None, Query(max_length=1024)] = None,
    key: Annotated[StorableText | None, Query(max_length=4096)] = None,
    since: UtcDatetime | None = None,
    before: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> JobPage:
    """Newest first; pass ``nextBefore`` back as ``before`` for the next page."""
    where = JobFilter(status=JobStatus(status_) if status_ else None, job_type=job_type, source_bucket=bucket,
                      source_key=key, since=since)  # fmt: skip
    jobs = await context_of(request).engine.list_jobs(where, before=before, limit=limit)
    return JobPage(jobs=[JobBody.of(j) for j in jobs], next_before=jobs[-1].id if len(jobs) == limit else None)


@router.post(
    "/acquire",
    response_model=JobBody,
    responses={204: {"description": "No job became ready within timeoutSeconds"}},
)
async def acquire(body: Acquire, request: Request) -> JobBody | Response:
    """Claim one ready job for ``workerId``, waiting up to ``timeoutSeconds`` for one to become ready."""
    return await acquire_one(context_of(request), body)


async def acquire_one(context: ApiContext, body: Acquire) -> JobBody | Response:
    """What :func:`acquire` does, for FastAPI's route and the fast path alike: the job, or a 204."""
    deadline = time.monotonic() + body.timeout_seconds
    while True:
        jobs = await context.engine.claim(body.worker_id, job_types=body.job_types, limit=1)
        if jobs:
            return JobBody.of(jobs[0])
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return Response(status_code=status.HTTP_204_NO_CONTENT)
        await wait_for_event(context.wakeups, min(POLL_SECONDS, remaining))


@router.get("/{job_id}", response_model=JobBody, responses=NOT_FOUND)
async def get_job(job_id: uuid.UUID, request: Request) -> JobBody:
    """A job with its dependencies; a PENDING one also says which flow limits hold it back (``heldBy``)."""
    engine = context_of(request).engine
    job = await engine.get(job_id)
    holds = await engine.flow.holds(job_id) if job.status is JobStatus.PENDING else None
    return JobBody.of(job, holds=holds)


async def _held(context: ApiContext, job_id: uuid.UUID, worker_id: uuid.UUID | None) -> JobRow:
    job = await context.engine.get(job_id)
    if job.status is not JobStatus.RUNNING or (worker_id is not None and job.worker_id != worker_id):
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"job {job_id} is {job.status.value}, not RUNNING for that worker"
        )
    return job


@router.post("/{job_id}/complete", response_model=Outcome, responses={**CONFLICT, **NOT_FOUND})
async def complete_job(job_id: uuid.UUID, body: Complete, request: Request) -> Outcome:
    """Complete a job RUNNING for ``workerId`` (for any worker without one): one statement; the job is read only
    to explain a refusal (404 for no such job, 409 for a job not RUNNING for that worker)."""
    return await complete(context_of(request), job_id, body)


async def complete(context: ApiContext, job_id: uuid.UUID, body: Complete) -> Outcome:
    """What :func:`complete_job` does, for FastAPI's route and the fast path alike."""
    if await context.engine.complete_held(job_id, body.worker_id, body.result):
        return Outcome(job_id=job_id, status="COMPLETED")
    await _held(context, job_id, body.worker_id)
    raise HTTPException(status.HTTP_409_CONFLICT, f"job {job_id} was rescued or finished meanwhile")


@router.post("/{job_id}/fail", response_model=Outcome, responses={**CONFLICT, **NOT_FOUND})
async def fail_job(job_id: uuid.UUID, body: Fail, request: Request) -> Outcome:
    """Record a failed attempt: PENDING again (retry after backoff) or FAILED (out of retries, or not retryable)."""
    context = context_of(request)
    job = await _held(context, job_id, body.worker_id)
    details = body.error.model_dump()
    failure = Failure(job, body.error.message, kind=FailureKind.ERROR if body.retryable else FailureKind.PERMANENT,
                      retryable=body.retryable, details={"details": details})  # fmt: skip
    new_status = await context.engine.fail(failure)
    if new_status is None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"job {job_id} was rescued or finished meanwhile")
    return Outcome(job_id=job_id, status=new_status.value)


@router.post("/{job_id}/cancel", response_model=Outcome, responses=NOT_FOUND)
async def cancel_job(job_id: uuid.UUID, request: Request) -> Outcome:
    """Cancel at once, or (RUNNING) ask its worker to stop at the next heartbeat; descendants are cancelled."""
    new_status = await context_of(request).engine.cancel(job_id)
    return Outcome(job_id=job_id, status=new_status.value)


@router.post("/{job_id}/retry", response_model=Outcome, responses={**NOT_FOUND, 409: {"model": Problem}})
async def retry_job(job_id: uuid.UUID, request: Request) -> Outcome:
    """Run a FAILED or CANCELLED job again (409 for any other status)."""
    new_status = await context_of(request).engine.retry(job_id)
    return Outcome(job_id=job_id, status=new_status.value)
