"""The ``sweeps`` and ``watched_buckets`` tables: listings of buckets, their cursors and progress."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from conveyor.db.connection import Connection, translate_errors
from conveyor.db.records import CompletedSweep, NewSweep, SweepKind, SweepPage, SweepRow, SweepStatus, WatchedBucket
from conveyor.db.sql import QUERIES


async def watch(conn: Connection, buckets: Sequence[str]) -> list[WatchedBucket]:
    """Watch ``buckets`` from now on unless already watched; every one of them, as recorded."""
    with translate_errors():
        await conn.execute(QUERIES["watched_bucket_ensure"], list(buckets))
        rows = await conn.fetch(QUERIES["watched_buckets_get"], list(buckets))
    return [WatchedBucket(r["bucket"], r["since"], r["sweep_requested_at"], r["request_reason"]) for r in rows]


async def request_sweep(conn: Connection, buckets: Sequence[str], *, reason: str) -> list[str]:
    """Ask for an early sweep of ``buckets`` (all watched ones when empty); the buckets asked."""
    with translate_errors():
        rows = await conn.fetch(QUERIES["watched_bucket_request_sweep"], list(buckets), reason)
    return [r["bucket"] for r in rows]


async def create(conn: Connection, sweep: NewSweep) -> SweepRow:
    s = sweep
    with translate_errors():
        row = await conn.fetchrow(
            QUERIES["sweep_create"], s.kind.value, s.bucket, s.prefix, s.pipeline, s.since, s.dry_run, s.reason
        )
    assert row is not None
    return SweepRow.from_record(row)


async def find_unfinished(conn: Connection, sweep: NewSweep) -> SweepRow | None:
    """An unfinished sweep with the same parameters as ``sweep`` (to resume), if any."""
    s = sweep
    with translate_errors():
        row = await conn.fetchrow(
            QUERIES["sweep_find_unfinished"], s.kind.value, s.bucket, s.prefix, s.pipeline, s.since, s.dry_run
        )
    return None if row is None else SweepRow.from_record(row)


async def claim(conn: Connection, sweep_id: int, *, owner: str, lease_seconds: float) -> SweepRow | None:
    """Take the sweep (PENDING, lease lapsed, or already ours); None when someone else runs it or it ended."""
    with translate_errors():
        row = await conn.fetchrow(QUERIES["sweep_claim"], sweep_id, owner, lease_seconds)
    return None if row is None else SweepRow.from_record(row)


async def next_claimable(conn: Connection, kind: SweepKind, *, owner: str) -> int | None:
    with translate_errors():
        found: int | None = await conn.fetchval(QUERIES["sweep_next_claimable"], kind.value, owner)
    return found


async def count(
    conn: Connection, sweep_id: int, *, owner: str, cursor: str | None, counted: int, done: bool, lease_seconds: float
) -> SweepRow | None:
    """Record the counting pass's progress (the total when ``done``); None when ``owner`` lost the sweep."""
    with translate_errors():
        row = await conn.fetchrow(QUERIES["sweep_count"], sweep_id, owner, cursor, counted, done, lease_seconds)
    return None if row is None else SweepRow.from_record(row)


async def advance(
    conn: Connection, sweep_id: int, page: SweepPage, *, owner: str, lease_seconds: float
) -> SweepRow | None:
    """Record one page and the cursor after it; None when ``owner`` no longer holds the sweep."""
    p = page
    with translate_errors():
        row = await conn.fetchrow(
            QUERIES["sweep_advance"], sweep_id, owner, p.cursor_key, p.cursor_version, p.listed, p.missing,
            p.started, p.jobs_created, lease_seconds,
        )  # fmt: skip
    return None if row is None else SweepRow.from_record(row)


async def finish(
    conn: Connection, sweep_id: int, *, owner: str, status: SweepStatus, error: str | None = None
) -> SweepRow | None:
    with translate_errors():
        row = await conn.fetchrow(QUERIES["sweep_finish"], sweep_id, owner, status.value, error)
    return None if row is None else SweepRow.from_record(row)


async def get(conn: Connection, sweep_id: int) -> SweepRow | None:
    with translate_errors():
        row = await conn.fetchrow(QUERIES["sweep_get"], sweep_id)
    return None if row is None else SweepRow.from_record(row)


async def list_sweeps(conn: Connection, kind: SweepKind, *, before: int | None, limit: int) -> list[SweepRow]:
    with translate_errors():
        rows = await conn.fetch(QUERIES["sweep_list"], kind.value, before, limit)
    return [SweepRow.from_record(r) for r in rows]


async def last_completed(conn: Connection, buckets: Sequence[str]) -> dict[tuple[str, str], CompletedSweep]:
    """Per (bucket, prefix) swept before, its last complete reconcile sweep, and whether the latest failed."""
    with translate_errors():
        rows = await conn.fetch(QUERIES["sweep_last_completed"], list(buckets))
    return {
        (r["bucket"], r["prefix"]): CompletedSweep(
            r["started_at"], r["finished_at"], r["last_finished_at"] if r["last_status"] == "FAILED" else None
        )
        for r in rows
    }


async def prune(conn: Connection, *, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` sweeps finished before ``before`` (each target's last completed one stays)."""
    with translate_errors():
        status = await conn.execute(QUERIES["sweeps_prune"], before, limit)
    return int(status.split()[-1])
