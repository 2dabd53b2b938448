"""Typed records: the rows ``db`` returns and the values its query functions take.

Plain frozen dataclasses and named tuples, with no database access: every room may import them, while
only the engine calls the query modules that produce and consume them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

import asyncpg

# -- jobs ----------------------------------------------------------------------------------------------


class JobStatus(StrEnum):
    """Mirrors the ``job_status`` enum of the schema."""

    BLOCKED = "BLOCKED"  # waiting for its parents
    PENDING = "PENDING"  # ready, or waiting for run_at (a scheduled run or a retry's backoff)
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"  # retries exhausted, or not retryable: the dead-letter state
    CANCELLED = "CANCELLED"

    @property
    def is_final(self) -> bool:
        return self in {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}


@dataclass(frozen=True, kw_only=True)
class JobRow:
    """A job as stored. ``attempts`` counts claims; ``errors`` holds one entry per failed attempt."""

    id: uuid.UUID
    job_type: str
    payload: dict[str, Any]
    status: JobStatus
    priority: int
    attempts: int
    attempt_floor: int
    max_retries: int
    timeout_ms: int
    run_at: datetime
    lease_expires_at: datetime | None
    worker_id: uuid.UUID | None
    cancel_requested: bool
    pending_parents: int
    result: Any
    errors: list[dict[str, Any]]
    idempotency_key: str | None
    pipeline: str | None
    step: str | None
    object_event_id: int | None
    source_bucket: str | None
    source_key: str | None
    source_version: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    #: The key its flow limits and fair share go by ('' when none was given).
    concurrency_key: str = ""
    depends_on: list[uuid.UUID] = field(default_factory=list)
    dependents: list[uuid.UUID] = field(default_factory=list)
    #: Whether a checkpoint was saved for this job when it was claimed; True when not known (a row read
    #: elsewhere than the claim), so a reader looks it up.
    has_checkpoint: bool = True

    @property
    def retries_left(self) -> int:
        """Attempts still allowed after the current one (0 means this attempt is the last)."""
        return max(0, self.max_retries + 1 - (self.attempts - self.attempt_floor))

    @classmethod
    def from_record(cls, record: asyncpg.Record) -> JobRow:
        # Columns a later release adds are left out, so this release keeps working beside it.
        values = {name: value for name, value in record.items() if name in _JOB_FIELDS}
        values["status"] = JobStatus(values["status"])
        values["depends_on"] = list(values.get("depends_on") or [])
        values["dependents"] = list(values.get("dependents") or [])
        values.setdefault("concurrency_key", "")
        values.setdefault("has_checkpoint", True)
        if len(values) != len(_JOB_FIELDS):
            return cls(**values)  # a column is missing: the constructor says which
        # Every field is here and typed by PostgreSQL: fill the instance at once. A frozen dataclass's
        # constructor sets 29 fields one object.__setattr__ at a time, a tenth of a worker's time per job.
        row = object.__new__(cls)
        row.__dict__.update(values)
        return row


_JOB_FIELDS = frozenset(f.name for f in fields(JobRow))


class NewJob(NamedTuple):
    """A job to insert, its fields in the order of ``job_rows``'s columns: bulk enqueue copies the first
    fifteen into the table as they are, one tuple per job (a dataclass per job and a tuple built from it
    cost 2.0 us of the 17.8 us a bulk-enqueued job took, against 0.7 us for this).

    A job with parents starts BLOCKED with ``pending_parents`` their number. ``run_at`` None is now."""

    id: uuid.UUID
    job_type: str
    payload: dict[str, Any]
    status: JobStatus = JobStatus.PENDING
    priority: int = 0
    max_retries: int = 3
    timeout_ms: int = 300_000
    pending_parents: int = 0
    pipeline: str | None = None
    step: str | None = None
    object_event_id: int | None = None
    source_bucket: str | None = None
    source_key: str | None = None
    source_version: str | None = None
    concurrency_key: str = ""
    run_at: datetime | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Completion:
    """What a batch of completions changed."""

    completed: set[uuid.UUID]
    #: Children made ready, with their job types (for the wake-up).
    released: dict[uuid.UUID, str]
    #: Types of completed jobs that freed a slot of a capped flow limit (woken: a held job may start now).
    freed_types: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class FailedAttempts:
    """What a batch of failed attempts changed: each applied job's new status, and the types to wake."""

    statuses: dict[uuid.UUID, JobStatus]
    freed_types: set[str]


@dataclass(frozen=True)
class Rescued:
    id: uuid.UUID
    status: JobStatus
    job_type: str


@dataclass(frozen=True, kw_only=True)
class JobFilter:
    """Optional filters of :func:`list_jobs`."""

    status: JobStatus | None = None
    job_type: str | None = None
    source_bucket: str | None = None
    source_key: str | None = None
    since: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class JobSearch:
    """A page of :func:`~conveyor.db.browse.search_jobs`: optional filters, keyset bounds, order and size.

    ``newer_than`` and ``older_than`` are exclusive id bounds: a page's cursor, or a creation time made an
    id (ids are UUIDv7, so id order is creation order).
    """

    status: JobStatus | None = None
    job_type: str | None = None
    source_bucket: str | None = None
    source_key: str | None = None
    newer_than: uuid.UUID | None = None
    older_than: uuid.UUID | None = None
    oldest_first: bool = False
    limit: int = 50


@dataclass(frozen=True, kw_only=True)
class JobBrief:
    """A job in one line: what a list of parents, children or running jobs shows."""

    id: uuid.UUID
    job_type: str
    pipeline: str | None
    step: str | None
    status: JobStatus
    attempts: int
    worker_id: uuid.UUID | None
    source_bucket: str | None
    source_key: str | None
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_record(cls, record: asyncpg.Record) -> JobBrief:
        values = dict(record)
        values["status"] = JobStatus(values["status"])
        return cls(**values)


@dataclass(frozen=True, kw_only=True)
class ObjectSummary:
    """A recorded upload of an object version (``uploads``), as an object search lists it."""

    bucket: str
    object_key: str
    version_id: str
    etag: str | None
    size_bytes: int | None
    modified_at: datetime | None
    origin: str
    pipelines: list[str]
    recorded_at: datetime
    removed_at: datetime | None

    @classmethod
    def from_record(cls, record: asyncpg.Record) -> ObjectSummary:
        values = dict(record)
        values["pipelines"] = list(values["pipelines"])
        return cls(**values)


@dataclass(frozen=True)
class MinuteCounts:
    """One minute of traffic: object events received, jobs finished, and of those the FAILED ones."""

    minute: datetime
    uploads: int
    finished: int
    failed: int


@dataclass(frozen=True)
class Depth:
    status: JobStatus
    job_type: str
    jobs: int
    oldest_ready_seconds: float | None


@dataclass(frozen=True)
class PipelineRun:
    """The jobs one recorded upload event started for one pipeline, once all of them are final."""

    bucket: str
    key: str
    pipeline: str | None
    jobs: int
    completed: int
    failed: int
    cancelled: int
    uploaded_at: datetime
    finished_at: datetime


class HeldJob(NamedTuple):
    """A job as its holder knows it: the id and the attempt it claimed (every transition is guarded by both)."""

    id: uuid.UUID
    attempt: int


class CompletionRow(NamedTuple):
    """A held job's successful result; ``attempt`` None for the attempt its worker holds (HTTP workers)."""

    id: uuid.UUID
    attempt: int | None
    result: Any


class FailureRow(NamedTuple):
    """A held job's failed attempt: its error entry, and when to retry (None: it ends FAILED)."""

    id: uuid.UUID
    attempt: int
    error: dict[str, Any]
    retry_at: datetime | None


class Edge(NamedTuple):
    """A dependency: ``child`` waits for ``parent``."""

    parent: uuid.UUID
    child: uuid.UUID


# -- flow limits ---------------------------------------------------------------------------------------


class FlowScope(StrEnum):
    """Mirrors the ``flow_scope`` enum: what a flow limit applies to."""

    KEY = "key"  # the jobs of one concurrency key
    JOB_TYPE = "job_type"  # the jobs of one type, whatever their key


class LimitSetBy(StrEnum):
    """Who set a flow limit: an operator's limits stay; the others go once their key is idle."""

    OPERATOR = "operator"
    PIPELINE = "pipeline"
    API = "api"


@dataclass(frozen=True, kw_only=True)
class FlowLimit:
    """What an operator sets on a key or a job type. None leaves that limit off; weight is the fair share."""

    scope: FlowScope
    name: str
    max_running: int | None = None
    rate_per_second: float | None = None
    burst: int | None = None
    weight: int = 1


@dataclass(frozen=True, kw_only=True)
class FlowLimitRow:
    """A limited scope now: its limits, RUNNING jobs, refilled tokens, and the ready jobs waiting on it."""

    scope: FlowScope
    name: str
    max_running: int | None
    rate_per_second: float | None
    burst: int | None
    weight: int
    running: int
    set_by: LimitSetBy
    tokens: float | None
    ready: int
    oldest_ready_seconds: float

    @classmethod
    def from_record(cls, record: asyncpg.Record) -> FlowLimitRow:
        values = dict(record)
        values["scope"], values["set_by"] = FlowScope(values["scope"]), LimitSetBy(values["set_by"])
        return cls(**values)


@dataclass(frozen=True)
class FlowHold:
    """A limit holding a ready job back: its scope is at ``max_running`` or out of rate tokens."""

    scope: FlowScope
    name: str
    max_running: int | None
    running: int
    rate_per_second: float | None

    def describe(self) -> str:
        what = f"{self.scope.value} {self.name!r}" if self.name else f"{self.scope.value} '' (unkeyed jobs)"
        if self.max_running is not None and self.running >= self.max_running:
            return f"{what} runs {self.running} of at most {self.max_running}"
        return f"{what} started its {self.rate_per_second:g} per second"


class RecountedScope(NamedTuple):
    """A scope whose RUNNING count had drifted, and the count it was mended to."""

    scope: FlowScope
    name: str
    running: int


# -- workers -------------------------------------------------------------------------------------------


class WorkerStatus(StrEnum):
    """Mirrors the ``workers.status`` values."""

    ACTIVE = "ACTIVE"
    DRAINING = "DRAINING"  # finishing its jobs, claiming no more
    STOPPED = "STOPPED"  # shut down gracefully
    LOST = "LOST"  # stopped heartbeating; its jobs were rescued

    @property
    def is_live(self) -> bool:
        return self in {WorkerStatus.ACTIVE, WorkerStatus.DRAINING}


@dataclass(frozen=True, kw_only=True)
class WorkerRow:
    """A registered worker process (Python or HTTP)."""

    id: uuid.UUID
    name: str
    worker_type: str
    capabilities: list[str]
    max_concurrent_jobs: int
    host: str | None
    pid: int | None
    version: str | None
    status: WorkerStatus
    started_at: datetime
    last_heartbeat_at: datetime
    stopped_at: datetime | None
    jobs_completed: int
    jobs_failed: int
    jobs_in_flight: int = 0

    @classmethod
    def from_record(cls, record: asyncpg.Record) -> WorkerRow:
        values = dict(record)
        values["capabilities"] = list(values["capabilities"])
        values["status"] = WorkerStatus(values["status"])
        return cls(**values)


class Liveness(NamedTuple):
    """Live workers (ACTIVE or DRAINING), and the age of the stalest heartbeat among them."""

    alive: int
    stalest_heartbeat_seconds: float


@dataclass(frozen=True, kw_only=True)
class NewWorker:
    id: uuid.UUID
    name: str
    worker_type: str = "python"
    capabilities: Sequence[str] = ()
    max_concurrent_jobs: int = 1
    host: str | None = None
    pid: int | None = None
    version: str | None = None


# -- object events and dead letters ----------------------------------------------------------------

#: (bucket, key, version id, event name, sequencer): what makes two notifications the same event.
Identity = tuple[str, str, str, str, str]
#: (bucket, key, version id): one object version, the unit an upload is recorded by.
ObjectVersion = tuple[str, str, str]


class EventOrigin(StrEnum):
    """What brought an event to conveyor."""

    NOTIFICATION = "notification"  # the S3 server's bucket notification, through Kafka
    SWEEP = "sweep"  # the reconciler found the object in a listing, with nothing recorded
    BACKFILL = "backfill"  # a backfill started pipelines for an existing object
    REPLAY = "replay"  # a dead letter sent through routing again


@dataclass(frozen=True, kw_only=True)
class NewObjectEvent:
    """An object event, with the Kafka record it came from (none for a sweep's or a backfill's)."""

    bucket: str
    key: str
    version_id: str
    event_name: str
    sequencer: str
    etag: str | None
    size: int | None
    content_type: str | None
    user_metadata: dict[str, str]
    event_time: datetime | None
    partition: int | None
    offset: int | None
    origin: EventOrigin = EventOrigin.NOTIFICATION
    modified_at: datetime | None = None

    @property
    def identity(self) -> Identity:
        return (self.bucket, self.key, self.version_id, self.event_name, self.sequencer)


@dataclass(frozen=True, kw_only=True)
class NewUpload:
    """The upload a new creation event brings, to record unless it is the recorded upload again."""

    bucket: str
    key: str
    version_id: str
    etag: str | None
    size: int | None
    modified_at: datetime | None
    event_id: int
    origin: EventOrigin
    pipelines: list[str]

    @property
    def object_version(self) -> ObjectVersion:
        return (self.bucket, self.key, self.version_id)


@dataclass(frozen=True, kw_only=True)
class Removal:
    """An object (or one version, or every version for a delete marker) removed at ``removed_at``."""

    bucket: str
    key: str
    version_id: str
    any_version: bool
    removed_at: datetime
    message: str


class CancelledJob(NamedTuple):
    id: uuid.UUID
    status: JobStatus
    job_type: str


@dataclass(frozen=True, kw_only=True)
class ListedObject:
    """One entry of a bucket listing."""

    key: str
    version_id: str
    etag: str | None
    size: int | None
    modified_at: datetime


@dataclass(frozen=True, kw_only=True)
class RecordedUpload:
    """What conveyor has recorded of a listed object: whether the listing shows a new upload, and if
    not, the pipelines its upload started and the recorded event's routing inputs."""

    is_new: bool
    pipelines: list[str]
    event_name: str | None
    content_type: str | None
    user_metadata: dict[str, str]


class SweepKind(StrEnum):
    RECONCILE = "reconcile"  # the reconciler's periodic or early listing: fills notification gaps
    BACKFILL = "backfill"  # an operator's listing: starts pipelines for objects that already exist


class SweepStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_final(self) -> bool:
        return self in {SweepStatus.COMPLETED, SweepStatus.FAILED, SweepStatus.CANCELLED}


@dataclass(frozen=True, kw_only=True)
class NewSweep:
    kind: SweepKind
    bucket: str
    prefix: str = ""
    pipeline: str | None = None
    since: datetime | None = None
    dry_run: bool = False
    reason: str = "manual"


@dataclass(frozen=True, kw_only=True)
class SweepRow:
    """A listing of a bucket, its cursor and its progress."""

    id: int
    kind: SweepKind
    bucket: str
    prefix: str
    pipeline: str | None
    since: datetime | None
    dry_run: bool
    reason: str
    status: SweepStatus
    owner: str | None
    lease_expires_at: datetime | None
    cursor_key: str | None
    cursor_version: str | None
    count_cursor: str | None
    objects_counted: int
    objects_total: int | None
    objects_listed: int
    objects_missing: int
    objects_started: int
    jobs_created: int
    pages: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime

    @classmethod
    def from_record(cls, record: asyncpg.Record) -> SweepRow:
        values = dict(record)
        values["kind"], values["status"] = SweepKind(values["kind"]), SweepStatus(values["status"])
        return cls(**values)


@dataclass(frozen=True, kw_only=True)
class SweepPage:
    """What one listed page did, written with the cursor after it."""

    cursor_key: str | None
    cursor_version: str | None
    listed: int
    missing: int
    started: int
    jobs_created: int


class CompletedSweep(NamedTuple):
    """A target's sweep history: its last complete sweep (None before one), and when its latest sweep
    ended FAILED, if it did (the next is retried after a pause)."""

    started_at: datetime | None
    finished_at: datetime | None
    failed_at: datetime | None = None


@dataclass(frozen=True)
class WatchedBucket:
    bucket: str
    since: datetime
    sweep_requested_at: datetime | None
    request_reason: str | None


@dataclass(frozen=True, kw_only=True)
class NewDeadLetter:
    reason: str
    error: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    #: The Kafka headers it arrived with, as (name, value) pairs.
    headers: Sequence[tuple[str, bytes]] = ()


@dataclass(frozen=True, kw_only=True)
class DeadLetterRow:
    id: int
    reason: str
    error: str
    source_topic: str
    source_partition: int
    source_offset: int
    message_key: bytes | None
    message_value: bytes
    created_at: datetime
    replayed_at: datetime | None
    replay_count: int
    last_replay_error: str | None

    @classmethod
    def from_record(cls, record: asyncpg.Record) -> DeadLetterRow:
        return cls(**dict(record))


@dataclass(frozen=True)
class EventJobs:
    id: int
    bucket: str
    key: str
    sequencer: str
    event_name: str
    jobs: int
