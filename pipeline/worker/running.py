"""A job running in this worker process: its task, its context, and how it ended."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum

from conveyor.db.records import JobRow
from conveyor.pipeline.handlers.base import JobContext


class StopReason(StrEnum):
    """Why a running job's task was cancelled from outside the handler."""

    CANCEL = "cancel"  # an operator cancelled the job: it ends CANCELLED
    LOST = "lost"  # the job is no longer ours (rescued while we were away): nothing is written
    SHUTDOWN = "shutdown"  # the worker is stopping: the job is requeued unrun


class Outcome(StrEnum):
    """How one attempt ended, as the ``outcome`` label of ``conveyor_job_run_seconds``."""

    COMPLETED = "completed"
    ERROR = "error"  # the handler raised: retried, or FAILED when out of retries
    TIMEOUT = "timeout"
    PERMANENT = "permanent"
    SNOOZED = "snoozed"  # RetryLater: requeued for later, no attempt spent
    CANCELLED = "cancelled"
    LOST = "lost"
    REQUEUED = "requeued"  # handed back unrun at shutdown
    UNRECORDED = "unrecorded"  # PostgreSQL was unavailable: the lease brings it back


STOPPED = {StopReason.CANCEL: Outcome.CANCELLED, StopReason.LOST: Outcome.LOST, StopReason.SHUTDOWN: Outcome.REQUEUED}


@dataclass
class Running:
    """A claimed job: its task waits for a free slot (when claimed ahead), then runs the handler."""

    job: JobRow
    ctx: JobContext
    task: asyncio.Task[None]
    stop_reason: StopReason | None = None
    #: Whether the handler has started (False while a job claimed ahead waits for a slot).
    started: bool = False
