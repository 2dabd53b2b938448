"""The operator's read side: pages of jobs and objects, and traffic per minute (``browse.sql``).

Every statement runs in a transaction with custom plans forced, so an optional filter's index is chosen
from the values of each call, never from a cached generic plan.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime

from conveyor.db.connection import Connection, translate_errors
from conveyor.db.records import JobBrief, JobRow, JobSearch, MinuteCounts, ObjectSummary
from conveyor.db.sql import QUERIES

#: The last code point, and the surrogates PostgreSQL cannot store (skipped when a prefix's end is made).
_MAX_CODE_POINT, _SURROGATES = 0x10FFFF, range(0xD800, 0xE000)


async def search_jobs(conn: Connection, search: JobSearch) -> list[JobRow]:
    """A page of jobs matching ``search``, in its order (newest first unless ``oldest_first``)."""
    # Two statements, not one: the direction of ORDER BY must be written out for an index to give the order.
    statement = QUERIES["browse_jobs_ascending"] if search.oldest_first else QUERIES["browse_jobs_descending"]
    async with _custom_plans(conn):
        rows = await conn.fetch(statement, *_job_filters(search), search.limit)
    return [JobRow.from_record(r) for r in rows]


async def count_jobs(conn: Connection, search: JobSearch, *, at_most: int) -> int:
    """How many jobs match ``search``'s filters and bounds, counting no further than ``at_most``."""
    async with _custom_plans(conn):
        count: int = await conn.fetchval(QUERIES["browse_jobs_count"], *_job_filters(search), at_most)
    return count


@asynccontextmanager
async def _custom_plans(conn: Connection) -> AsyncIterator[None]:
    """A read-only transaction planned for each call's values (errors translated)."""
    with translate_errors():
        async with conn.transaction(readonly=True):
            await conn.execute(QUERIES["browse_custom_plans"])
            yield


def _job_filters(search: JobSearch) -> tuple[object, ...]:
    return (search.status, search.job_type, search.source_bucket, search.source_key, search.newer_than,
            search.older_than)  # fmt: skip


async def briefs(conn: Connection, ids: Sequence[uuid.UUID]) -> list[JobBrief]:
    """Jobs ``ids`` in a line each, in id order (unknown ids are left out)."""
    with translate_errors():
        return [JobBrief.from_record(r) for r in await conn.fetch(QUERIES["browse_job_briefs"], list(ids))]


async def running_on(conn: Connection, worker_ids: Sequence[uuid.UUID], *, limit: int) -> list[JobBrief]:
    """The RUNNING jobs of ``worker_ids``, longest running first."""
    with translate_errors():
        rows = await conn.fetch(QUERIES["browse_running_on"], list(worker_ids), limit)
    return [JobBrief.from_record(r) for r in rows]


async def search_objects(
    conn: Connection, bucket: str, prefix: str, *, after: tuple[str, str] | None = None, limit: int = 50
) -> list[ObjectSummary]:
    """``bucket``'s recorded uploads whose key starts with ``prefix``, in byte order, after ``after`` (key, version)."""
    after_key, after_version = after if after is not None else (None, None)
    async with _custom_plans(conn):
        rows = await conn.fetch(QUERIES["browse_objects"], bucket, prefix, prefix_end(prefix), after_key,
                                after_version, limit)  # fmt: skip
    return [ObjectSummary.from_record(r) for r in rows]


def prefix_end(prefix: str) -> str | None:
    """The least string above every string starting with ``prefix``, in code point order (None: no bound).

    The last character that can be raised is raised by one (over the surrogates), and what follows it dropped.
    """
    for cut in range(len(prefix) - 1, -1, -1):
        point = ord(prefix[cut]) + 1
        if point in _SURROGATES:
            point = _SURROGATES.stop
        if point <= _MAX_CODE_POINT:
            return prefix[:cut] + chr(point)
    return None


async def throughput(conn: Connection, since: datetime) -> list[MinuteCounts]:
    """Object events received, jobs finished and jobs failed per minute since ``since``, oldest first."""
    with translate_errors():
        rows = await conn.fetch(QUERIES["browse_throughput"], since)
    return [MinuteCounts(r["minute"], r["uploads"], r["finished"], r["failed"]) for r in rows]


async def swept_missing(conn: Connection, since: datetime) -> int:
    """Objects reconciliation sweeps finished since ``since`` found with no notification recorded."""
    with translate_errors():
        found: int = await conn.fetchval(QUERIES["browse_swept_missing"], since)
    return found
