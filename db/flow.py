"""The ``flow_limits`` table: limits and weights of concurrency keys and job types, and who waits on them.

The claim statement enforces the limits (``jobs.claim``) and a trigger keeps their RUNNING counts; these
functions set, read and mend them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime

from conveyor.db.connection import Connection, translate_errors
from conveyor.db.records import FlowHold, FlowLimit, FlowLimitRow, FlowScope, LimitSetBy, RecountedScope
from conveyor.db.sql import QUERIES


async def set_limit(conn: Connection, limit: FlowLimit, *, now: datetime | None = None) -> None:
    """Set (or replace) an operator's limit; its RUNNING count starts from the jobs running now."""
    f = limit
    with translate_errors():
        await conn.execute(
            QUERIES["flow_limit_set"], f.scope.value, f.name, f.max_running, f.rate_per_second, f.burst, f.weight, now
        )


async def clear_limit(conn: Connection, scope: FlowScope, name: str) -> bool:
    """Remove a scope's limits; False when it had none."""
    with translate_errors():
        return await conn.fetchval(QUERIES["flow_limit_clear"], scope.value, name) is not None


async def ensure_key_limits(conn: Connection, limits: Mapping[str, int], *, set_by: LimitSetBy) -> None:
    """Give keys the ``max_running`` their jobs were created with, unless an operator set the key."""
    names = sorted(limits)
    with translate_errors():
        await conn.execute(QUERIES["flow_key_limits_ensure"], names, [limits[n] for n in names], set_by.value)


async def list_limits(
    conn: Connection, *, only: tuple[FlowScope, str] | None = None, now: datetime | None = None
) -> list[FlowLimitRow]:
    """Every limited scope with its live counts (or only the scope ``only`` names)."""
    scope, name = (only[0].value, only[1]) if only else (None, None)
    with translate_errors():
        rows = await conn.fetch(QUERIES["flow_limits_list"], now, scope, name)
    return [FlowLimitRow.from_record(r) for r in rows]


async def holds_of_job(conn: Connection, job_id: uuid.UUID, *, now: datetime | None = None) -> list[FlowHold]:
    """The limits holding back a ready PENDING job (none for any other job)."""
    with translate_errors():
        rows = await conn.fetch(QUERIES["flow_holds_of_job"], job_id, now)
    return [FlowHold(FlowScope(r["scope"]), r["name"], r["max_running"], r["running"], r["rate_per_second"])
            for r in rows]  # fmt: skip


async def rate_limited(conn: Connection) -> bool:
    """Whether any scope has a rate limit."""
    with translate_errors():
        return bool(await conn.fetchval(QUERIES["flow_rate_limited"]))


async def rate_wait(conn: Connection, job_types: Sequence[str], *, now: datetime | None = None) -> float | None:
    """Seconds until a rate limit holding back a ready job of ``job_types`` refills a token; None if none."""
    with translate_errors():
        seconds: float | None = await conn.fetchval(QUERIES["flow_rate_wait"], list(job_types), now)
    return seconds


async def recount(conn: Connection) -> list[RecountedScope]:
    """Mend drifted RUNNING counts; must run in a transaction (the lock, then a fresh snapshot's count)."""
    with translate_errors():
        await conn.execute(QUERIES["flow_limits_lock"])
        rows = await conn.fetch(QUERIES["flow_limits_recount"])
    return [RecountedScope(FlowScope(r["scope"]), r["name"], r["running"]) for r in rows]


async def prune(conn: Connection, *, idle_before: datetime) -> int:
    """Remove pipeline- and API-set key limits idle since ``idle_before``; how many went."""
    with translate_errors():
        count: int = await conn.fetchval(QUERIES["flow_limits_prune"], idle_before)
    return count
