"""What a handler is, what it receives, and how it steers its job's outcome.

A handler is an async callable ``handler(ctx) -> result``: what it returns becomes the job's JSON result.
``RetryLater(delay)`` snoozes the job without spending an attempt; ``PermanentFailure(reason)`` fails it
without retrying; any other exception is retried under the job type's retry policy.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from minio import Minio

from conveyor.db.errors import ConfigurationError
from conveyor.db.records import JobRow
from conveyor.pipeline.engine.dag import SourceObject
from conveyor.pipeline.lineage import JOB_ID_METADATA, LINEAGE_METADATA

T = TypeVar("T")


class RetryLater(Exception):
    """Run the job again after ``delay_seconds``, without spending an attempt (a dependency isn't ready...)."""

    def __init__(self, delay_seconds: float, reason: str = "") -> None:
        super().__init__(reason or f"retry in {delay_seconds}s")
        self.delay_seconds = delay_seconds


class PermanentFailure(Exception):
    """Fail the job now: retrying cannot help (corrupt input, a checksum mismatch...)."""


class JobState(Protocol):
    """What a handler's context reads and writes about its job beyond the row: the engine in production,
    an in-memory stand-in in users' unit tests (:class:`conveyor.testing.MemoryJobState`)."""

    async def parent_results(self, job_id: uuid.UUID) -> list[dict[str, Any]]: ...

    async def checkpoint(self, job: JobRow, state: Any) -> bool: ...

    async def last_checkpoint(self, job_id: uuid.UUID) -> Any: ...


@dataclass
class JobContext:
    """Everything a handler may use. The S3 client is synchronous: call it through :meth:`in_thread`."""

    job: JobRow
    engine: JobState
    s3: Minio
    log: logging.LoggerAdapter[logging.Logger]
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)
    _checkpointed: bool = field(default=False, init=False, repr=False)

    @property
    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = self.job.payload.get("params", {})
        return params

    @property
    def source(self) -> SourceObject:
        """The uploaded object this job works on; a :class:`PermanentFailure` for jobs without one."""
        if self.job.source_bucket is None or self.job.source_key is None:
            raise PermanentFailure(f"job type {self.job.job_type!r} needs a source object and this job has none")
        return SourceObject(
            self.job.source_bucket, self.job.source_key, self.job.source_version, self.job.object_event_id
        )

    @property
    def lineage_depth(self) -> int:
        return int(self.job.payload.get("lineage_depth", 0))

    def output_metadata(self) -> dict[str, str]:
        """User metadata for objects this job writes: who wrote them, and how deep in a chain they are."""
        return {JOB_ID_METADATA: str(self.job.id), LINEAGE_METADATA: str(self.lineage_depth + 1)}

    async def parent_results(self) -> dict[str, Any]:
        """Results of the jobs this one depends on, by their step name (or id)."""
        parents = await self.engine.parent_results(self.job.id)
        return {str(p["step"] or p["id"]): p["result"] for p in parents}

    async def checkpoint(self, state: Any) -> bool:
        """Save progress; a retry of this job starts from :meth:`last_checkpoint`."""
        saved = await self.engine.checkpoint(self.job, state)
        self._checkpointed = self._checkpointed or saved
        return saved

    async def last_checkpoint(self) -> Any:
        """The latest saved progress, or None. A job claimed with none and not checkpointed since has none:
        most jobs run once, and skip the database round trip."""
        if not (self.job.has_checkpoint or self._checkpointed):
            return None
        return await self.engine.last_checkpoint(self.job.id)

    def checkpoint_from_thread(self, state: Any) -> bool:
        """:meth:`checkpoint` for handler code running in a worker thread (see :meth:`in_thread`)."""
        return asyncio.run_coroutine_threadsafe(self.checkpoint(state), self.loop).result()

    async def in_thread(self, work: Callable[..., T], *args: Any) -> T:
        """Run blocking work (S3 calls, hashing, parsing) off the event loop."""
        return await asyncio.to_thread(work, *args)

    def check_cancelled(self) -> None:
        """For loops in threads: stop promptly once the job was cancelled or timed out."""
        if self.cancelled.is_set():
            raise asyncio.CancelledError


class Handler(Protocol):
    async def __call__(self, ctx: JobContext) -> Any: ...


class HandlerRegistry:
    """Handlers by job type."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, job_type: str, handler: Handler) -> None:
        if job_type in self._handlers:
            raise ConfigurationError(f"a handler for job type {job_type!r} is already registered")
        self._handlers[job_type] = handler

    def get(self, job_type: str) -> Handler | None:
        return self._handlers.get(job_type)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._handlers))

    def __contains__(self, job_type: object) -> bool:
        return job_type in self._handlers

    def load_module(self, name: str) -> None:
        """Import a user module and call its ``register(registry)``."""
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise ConfigurationError(f"handler module {name!r} cannot be imported: {exc}") from None
        register: Callable[[HandlerRegistry], Awaitable[None] | None] | None = getattr(module, "register", None)
        if register is None:
            raise ConfigurationError(f"handler module {name!r} has no register(registry) function")
        register(self)
