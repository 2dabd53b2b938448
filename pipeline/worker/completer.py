"""Writing completions in batches: as many as piled up while the previous write was in flight.

At light load each completion is written at once (a batch of one). Under load, completions that finish
while a write is running go out together in the next ``complete_many``, and a batch that would start
within ``interval`` seconds of the last one waits out the rest of it (or until ``full`` completions are
waiting): one transaction, and one commit's flush, for several jobs instead of one each. That is where
a PostgreSQL queue gets its throughput.

A batch is retried while PostgreSQL is unavailable. A batch PostgreSQL refuses is split in halves until
the refused completion stands alone; that one is handed to ``on_refused`` (the worker fails its job
permanently) and every other completion of the batch is written.

Until a completion is written its job stays held: :meth:`Completer.held` lists them, so the worker keeps
extending their leases and the rescuer never takes back a job whose result is on its way. The worker's
heartbeat runs :meth:`Completer.between_writes`: a heartbeat and a completion batch lock the same jobs,
in whatever order their plans take, and run at once they deadlocked under load.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from conveyor.db.errors import DatabaseError, ServiceUnavailable
from conveyor.db.records import JobRow
from conveyor.pipeline.engine import Engine, JobResult

log = logging.getLogger(__name__)

RETRY_SECONDS = 0.5


async def _log_refusal(job: JobRow, error: DatabaseError) -> None:
    log.error("completion of job %s refused by PostgreSQL: %s", job.id, error)


class Completer:
    """``add()`` from job tasks; ``run()`` writes; ``drain()`` waits until everything added is written."""

    def __init__(
        self,
        engine: Engine,
        on_written: Callable[[list[JobRow]], None] = lambda jobs: None,
        on_refused: Callable[[JobRow, DatabaseError], Awaitable[None]] = _log_refusal,
        interval: float = 0.0,
        full: int = 1,
    ) -> None:
        self._engine, self._on_written, self._on_refused = engine, on_written, on_refused
        self._interval, self._full = interval, full
        self._last_start = -interval  # loop time the last batch started
        self._filled = asyncio.Event()
        self._pending: list[JobResult] = []
        self._writing: list[JobResult] = []
        self._added = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._turn = asyncio.Lock()

    def add(self, job: JobRow, result: Any) -> None:
        self._pending.append(JobResult(job, result))
        self._idle.clear()
        self._added.set()
        if len(self._pending) >= self._full:
            self._filled.set()

    @asynccontextmanager
    async def between_writes(self) -> AsyncIterator[None]:
        """No batch is written while the block runs (one in flight finishes first)."""
        async with self._turn:
            yield

    def held(self) -> list[JobRow]:
        """Jobs whose completion is added but not written yet (their leases must be kept)."""
        return [done.job for done in self._writing + self._pending]

    async def run(self) -> None:
        """Write until cancelled (call :meth:`drain` first to lose nothing)."""
        loop = asyncio.get_running_loop()
        while True:
            await self._added.wait()
            await self._fill(self._last_start + self._interval - loop.time())
            self._added.clear()
            self._last_start = loop.time()
            await self.flush()

    async def _fill(self, wait: float) -> None:
        """Wait up to ``wait`` seconds, or less once ``full`` completions are waiting."""
        if wait <= 0 or len(self._pending) >= self._full:
            return
        self._filled.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._filled.wait()

    async def flush(self) -> None:
        """Write everything added so far. If this raises, nothing is forgotten: the next flush retries it."""
        batch, self._pending = self._pending, []
        self._writing = batch
        try:
            await self._write(batch)
        except BaseException:
            self._pending[:0] = batch
            self._added.set()
            raise
        finally:
            self._writing = []
        if not self._pending:
            self._idle.set()

    async def _write(self, batch: list[JobResult]) -> None:
        while True:
            try:
                async with self._turn:
                    completed = await self._engine.complete_many(batch)
            except ServiceUnavailable as exc:
                log.warning("completions not written yet (%s); retrying", exc)
                await asyncio.sleep(RETRY_SECONDS)
            except DatabaseError as exc:
                await self._split(batch, exc)
                return
            else:
                self._on_written([done.job for done in batch if done.job.id in completed])
                return

    async def _split(self, batch: list[JobResult], error: DatabaseError) -> None:
        """Write the halves apart until the refused completion is alone, then hand it to ``on_refused``."""
        if len(batch) == 1:
            await self._refuse(batch[0].job, error)
            return
        middle = len(batch) // 2
        await self._write(batch[:middle])
        await self._write(batch[middle:])

    async def _refuse(self, job: JobRow, error: DatabaseError) -> None:
        while True:
            try:
                await self._on_refused(job, error)
            except ServiceUnavailable as exc:
                log.warning("refused completion of job %s not failed yet (%s); retrying", job.id, exc)
                await asyncio.sleep(RETRY_SECONDS)
            else:
                return

    async def drain(self) -> None:
        await self._idle.wait()
