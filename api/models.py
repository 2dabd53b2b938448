"""Request and response bodies of the HTTP API, in the original job service's camelCase JSON."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from conveyor.db.records import DeadLetterRow, FlowHold, FlowLimitRow, JobRow, WorkerRow
from conveyor.db.values import unstorable
from conveyor.ingest.backfill import Progress
from conveyor.pipeline.engine.dag import MAX_CONCURRENCY_KEY_LENGTH
from conveyor.pipeline.engine.flow import MAX_RATE, MIN_RATE

JobStatusName = Literal["BLOCKED", "PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"]
MAX_PRIORITY = 1_000_000
MAX_TIMEOUT_MS = 7 * 24 * 3600 * 1000


class Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


def storable(value: Any) -> Any:
    """Refuse JSON that PostgreSQL cannot store (NUL characters, lone surrogates) with the path named."""
    if (where := unstorable(value)) is not None:
        raise ValueError(f"{where} holds a NUL character or an unpaired surrogate, which cannot be stored")
    return value


def utc(value: datetime) -> datetime:
    """A timestamp PostgreSQL can store: timezone-aware and in UTC (it refuses offsets beyond ±15:59)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise ValueError(f"timestamp out of range: {exc}") from None


UtcDatetime = Annotated[datetime, AfterValidator(utc)]
StorableJson = Annotated[Any, AfterValidator(storable)]
StorableObject = Annotated[dict[str, Any], AfterValidator(storable)]
StorableText = Annotated[str, AfterValidator(storable)]


def printable(value: str) -> str:
    if not value.isprintable():
        raise ValueError("must not contain control characters")
    return value


PrintableText = Annotated[str, AfterValidator(printable)]


class CreateJob(Camel):
    job_type: StorableText = Field(min_length=1, max_length=200)
    payload: StorableObject = Field(default_factory=dict)
    priority: int = Field(0, ge=-MAX_PRIORITY, le=MAX_PRIORITY)
    max_retries: int = Field(3, ge=0, le=1000)
    timeout_ms: int = Field(300_000, ge=1, le=MAX_TIMEOUT_MS)
    depends_on: list[uuid.UUID] = Field(default_factory=list, max_length=1000)
    run_at: UtcDatetime | None = None
    idempotency_key: StorableText | None = Field(None, min_length=1, max_length=500)
    #: Fair share and the key's limits go by it; omitted, the job joins the pool of unkeyed jobs.
    concurrency_key: PrintableText = Field("", max_length=MAX_CONCURRENCY_KEY_LENGTH)
    #: At most this many of the key's jobs RUNNING at once, cluster-wide (sets the key's limit).
    concurrency_limit: int | None = Field(None, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _limit_has_key(self) -> CreateJob:
        if self.concurrency_limit is not None and not self.concurrency_key:
            raise ValueError("concurrencyLimit needs a concurrencyKey")
        return self


class JobCreated(Camel):
    success: bool = True
    job_id: uuid.UUID
    message: str = "Job created successfully"


class SourceBody(Camel):
    bucket: str
    key: str
    version: str | None
    event_id: int | None


class JobBody(Camel):
    job_id: uuid.UUID
    job_type: str
    status: JobStatusName
    priority: int
    payload: dict[str, Any]
    attempts: int
    max_retries: int
    timeout_ms: int
    result: Any
    errors: list[dict[str, Any]]
    depends_on: list[uuid.UUID]
    dependents: list[uuid.UUID]
    worker_id: uuid.UUID | None
    source: SourceBody | None
    pipeline: str | None
    step: str | None
    cancel_requested: bool
    run_at: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    lease_expires_at: datetime | None
    concurrency_key: str
    #: For a ready PENDING job read by itself: the flow limits holding it back now (empty: it waits for
    #: a free worker slot). Null in lists.
    held_by: list[str] | None = None

    @classmethod
    def of(cls, job: JobRow, *, holds: Sequence[FlowHold] | None = None) -> JobBody:
        source = None
        if job.source_bucket is not None and job.source_key is not None:
            source = SourceBody(bucket=job.source_bucket, key=job.source_key, version=job.source_version,
                                event_id=job.object_event_id)  # fmt: skip
        return cls(
            job_id=job.id, job_type=job.job_type, status=job.status.value, priority=job.priority,
            payload=job.payload, attempts=job.attempts, max_retries=job.max_retries, timeout_ms=job.timeout_ms,
            result=job.result, errors=job.errors, depends_on=job.depends_on, dependents=job.dependents,
            worker_id=job.worker_id, source=source, pipeline=job.pipeline, step=job.step,
            cancel_requested=job.cancel_requested, run_at=job.run_at, created_at=job.created_at,
            started_at=job.started_at, finished_at=job.finished_at, lease_expires_at=job.lease_expires_at,
            concurrency_key=job.concurrency_key, held_by=None if holds is None else [h.describe() for h in holds],
        )  # fmt: skip


class JobPage(Camel):
    jobs: list[JobBody]
    #: Pass as ``before`` to get the next (older) page; null on the last page.
    next_before: uuid.UUID | None


class Acquire(Camel):
    worker_id: uuid.UUID
    timeout_seconds: float = Field(0, ge=0, le=60)
    job_types: list[StorableText] = Field(default_factory=list, max_length=100)


class Complete(Camel):
    result: StorableJson = None
    worker_id: uuid.UUID | None = None


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    message: StorableText = Field(min_length=1, max_length=10_000)

    @model_validator(mode="after")
    def _storable_extras(self) -> ErrorDetail:
        storable(self.model_extra)
        return self


class Fail(Camel):
    error: ErrorDetail
    retryable: bool = True
    worker_id: uuid.UUID | None = None


class Outcome(Camel):
    success: bool = True
    job_id: uuid.UUID
    status: JobStatusName


class RegisterWorker(Camel):
    worker_name: StorableText = Field(min_length=1, max_length=200)
    worker_type: StorableText = Field("http", min_length=1, max_length=100)
    capabilities: list[StorableText] = Field(default_factory=list, max_length=100)
    max_concurrent_jobs: int = Field(1, ge=1, le=10_000)


class WorkerRegistered(Camel):
    success: bool = True
    worker_id: uuid.UUID


class WorkerBody(Camel):
    worker_id: uuid.UUID
    worker_name: str
    worker_type: str
    capabilities: list[str]
    max_concurrent_jobs: int
    status: str
    host: str | None
    pid: int | None
    started_at: datetime
    last_heartbeat: datetime
    jobs_in_flight: int
    jobs_completed: int
    jobs_failed: int

    @classmethod
    def of(cls, w: WorkerRow) -> WorkerBody:
        return cls(
            worker_id=w.id, worker_name=w.name, worker_type=w.worker_type, capabilities=w.capabilities,
            max_concurrent_jobs=w.max_concurrent_jobs, status=w.status, host=w.host, pid=w.pid,
            started_at=w.started_at, last_heartbeat=w.last_heartbeat_at, jobs_in_flight=w.jobs_in_flight,
            jobs_completed=w.jobs_completed, jobs_failed=w.jobs_failed,
        )  # fmt: skip


class Heartbeat(Camel):
    success: bool = True
    worker_id: uuid.UUID
    #: Jobs the worker holds that were asked to stop (cancelled): it should abandon them.
    cancel_requested: list[uuid.UUID]


class HealthSample(Camel):
    recorded_at: datetime
    status: str
    jobs_in_flight: int
    rss_bytes: int | None
    cpu_percent: float | None


class WorkerHealth(Camel):
    worker: WorkerBody
    recent: list[HealthSample]


class ServiceCheck(Camel):
    status: Literal["up", "down"]
    required: bool
    latency_ms: float
    error: str | None = None


class HealthBody(Camel):
    status: Literal["healthy", "degraded", "unhealthy"]
    services: dict[str, ServiceCheck]


class ObjectEventBody(Camel):
    event_id: int
    #: What brought it: a notification, a reconciliation sweep, a backfill or a dead-letter replay.
    origin: Literal["notification", "sweep", "backfill", "replay"]
    event_name: str
    version_id: str
    sequencer: str
    etag: str | None
    size: int | None
    event_time: datetime | None
    received_at: datetime


class ObjectStory(Camel):
    bucket: str
    key: str
    events: list[ObjectEventBody]
    jobs: list[JobBody]


class DeadLetterBody(Camel):
    id: int
    reason: str
    error: str
    source_topic: str
    source_partition: int
    source_offset: int
    message_bytes: int
    message_preview: str
    created_at: datetime
    replayed_at: datetime | None
    replay_count: int
    last_replay_error: str | None

    @classmethod
    def of(cls, d: DeadLetterRow) -> DeadLetterBody:
        return cls(
            id=d.id, reason=d.reason, error=d.error, source_topic=d.source_topic, source_partition=d.source_partition,
            source_offset=d.source_offset, message_bytes=len(d.message_value),
            message_preview=d.message_value[:500].decode("utf-8", errors="replace"), created_at=d.created_at,
            replayed_at=d.replayed_at, replay_count=d.replay_count, last_replay_error=d.last_replay_error,
        )  # fmt: skip


class Replayed(Camel):
    success: bool
    dead_letter: DeadLetterBody
    jobs_created: int


class Problem(BaseModel):
    """Every error response: what went wrong, in words a client can show."""

    detail: Any


class BackfillCreate(Camel):
    """Start pipelines for objects already in ``bucket`` under ``prefix``."""

    bucket: StorableText = Field(min_length=1, max_length=255)
    prefix: StorableText = Field("", max_length=1024)
    #: Only this pipeline, for the objects that have not run it.
    pipeline: StorableText | None = Field(None, min_length=1, max_length=255)
    #: Only objects written at or after this time (UTC when no offset is given).
    since: datetime | None = None
    dry_run: bool = False


class BackfillBody(Camel):
    id: int
    status: Literal["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"]
    bucket: str
    prefix: str
    pipeline: str | None
    since: datetime | None
    dry_run: bool
    objects_total: int | None
    objects_listed: int
    objects_started: int
    jobs_created: int
    rate_per_second: float | None
    eta_seconds: float | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, progress: Progress) -> BackfillBody:
        s = progress.sweep
        return cls(
            id=s.id, status=s.status.value, bucket=s.bucket, prefix=s.prefix, pipeline=s.pipeline, since=s.since,
            dry_run=s.dry_run, objects_total=s.objects_total, objects_listed=s.objects_listed,
            objects_started=s.objects_started, jobs_created=s.jobs_created, rate_per_second=progress.rate_per_second,
            eta_seconds=progress.eta_seconds, error=s.error, created_at=s.created_at, started_at=s.started_at,
            finished_at=s.finished_at,
        )  # fmt: skip


class LimitSet(Camel):
    """A flow limit an operator sets on a concurrency key or a job type (null leaves that limit off)."""

    max_running: int | None = Field(None, ge=1, le=1_000_000)
    rate_per_second: float | None = Field(None, ge=MIN_RATE, le=MAX_RATE)
    burst: int | None = Field(None, ge=1, le=1_000_000)
    weight: int = Field(1, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _something_set(self) -> LimitSet:
        if self.burst is not None and self.rate_per_second is None:
            raise ValueError("burst comes with ratePerSecond")
        if self.max_running is None and self.rate_per_second is None and self.weight == 1:
            raise ValueError("set maxRunning, ratePerSecond or a weight other than 1 (DELETE clears a limit)")
        return self


class LimitBody(Camel):
    """A limited scope now: its limits, RUNNING jobs, refilled tokens, and the ready jobs waiting."""

    scope: Literal["key", "job_type"]
    name: str
    max_running: int | None
    rate_per_second: float | None
    burst: int | None
    weight: int
    running: int
    tokens: float | None
    ready: int
    oldest_ready_seconds: float
    set_by: str

    @classmethod
    def of(cls, row: FlowLimitRow) -> LimitBody:
        return cls(
            scope=row.scope.value, name=row.name, max_running=row.max_running, rate_per_second=row.rate_per_second,
            burst=row.burst, weight=row.weight, running=row.running, tokens=row.tokens, ready=row.ready,
            oldest_ready_seconds=row.oldest_ready_seconds, set_by=row.set_by.value,
        )  # fmt: skip
