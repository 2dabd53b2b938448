"""Writing completions in batches: as many as piled up while the previous write was in flight.

At light load each completion is written at once (a batch of one); under load, completions that finish
while a write is running go out together in the next ``complete_many``, which is where a PostgreSQL
queue gets its throughput. A batch is retried until PostgreSQL takes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from db.errors import ServiceUnavailable
from db.jobs import JobRow
from pipeline.engine import Engine

log = logging.getLogger(__name__)

RETRY_SECONDS = 0.5


class Completer:
    """``add()`` from job tasks; ``run()`` writes; ``drain()`` waits until everything added is written."""

    def __init__(self, engine: Engine, on_written: Callable[[list[JobRow]], None] = lambda jobs: None) -> None:
        self._engine, self._on_written = engine, on_written
        self._pending: list[tuple[JobRow, Any]] = []
        self._added = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def add(self, job: JobRow, result: Any) -> None:
        self._pending.append((job, result))
        self._idle.clear()
        self._added.set()

    async def run(self) -> None:
        """Write until cancelled (call :meth:`drain` first to lose nothing)."""
        while True:
            await self._added.wait()
            self._added.clear()
            await self.flush()

    async def flush(self) -> None:
        batch, self._pending = self._pending, []
        while batch:
            try:
                completed = await self._engine.complete_many(batch)
            except ServiceUnavailable as exc:
                log.warning("completions not written yet (%s); retrying", exc)
                await asyncio.sleep(RETRY_SECONDS)
            else:
                self._on_written([job for job, _ in batch if job.id in completed])
                batch = []
        if not self._pending:
            self._idle.set()

    async def drain(self) -> None:
        await self._idle.wait()
