"""The engine's door to what reached conveyor: recorded object events and dead letters (the read side).

Writing them is part of an :class:`~conveyor.pipeline.engine.transaction.EngineTransaction`, beside the
jobs they start.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conveyor.db import events as event_queries
from conveyor.db.connection import Pool, acquire
from conveyor.db.records import DeadLetterRow, EventJobs


class ObjectRecords:
    """``engine.objects``: an object's events, dead letters, and the events' job counts."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def events_of(self, bucket: str, key: str) -> list[dict[str, Any]]:
        """Every recorded event of ``s3://bucket/key``, oldest first."""
        async with acquire(self._pool) as conn:
            return await event_queries.for_key(conn, bucket, key)

    async def dead_letters(
        self, *, include_replayed: bool = False, before: int | None = None, limit: int = 50
    ) -> list[DeadLetterRow]:
        """Dead letters, newest first; page with ``before`` (the last id of the previous page)."""
        async with acquire(self._pool) as conn:
            return await event_queries.list_dead_letters(
                conn, include_replayed=include_replayed, before=before, limit=limit
            )

    async def dead_letter_headers(self, letter_ids: Sequence[int]) -> dict[int, list[tuple[str, str]]]:
        """The Kafka headers ``letter_ids`` arrived with; letters that came with none are left out."""
        async with acquire(self._pool) as conn:
            return await event_queries.dead_letter_headers(conn, letter_ids)

    async def open_dead_letters(self) -> int:
        async with acquire(self._pool) as conn:
            return await event_queries.open_dead_letters(conn)

    async def job_counts(self) -> list[EventJobs]:
        """Every recorded event with the number of jobs it started (audits: exactly once per upload)."""
        async with acquire(self._pool) as conn:
            return await event_queries.job_counts(conn)
