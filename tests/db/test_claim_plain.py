"""The claim's short way. With no flow_limits row anywhere and every PENDING job under one concurrency key,
the fair share and the rooms decide nothing; the claim statement then takes the first ready jobs by
priority, then run_at, then id, and leaves its full way unexecuted. These tests hold both ways to the same
grants, from the same queue, and show which way each claim took by its executed plan."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conveyor.db import jobs as job_queries
from conveyor.db.connection import Connection, Pool, acquire
from conveyor.db.sql import QUERIES
from conveyor.pipeline.engine import Engine, JobSpec

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
WORKER = uuid.uuid4()
#: A limit on a job type no queued job has: it binds nothing, but it is a flow_limits row.
UNRELATED_LIMIT = (
    "INSERT INTO flow_limits (scope, name, max_running, set_by) VALUES ('job_type', 'other', 5, 'operator')"
)


async def _mixed_queue(pool: Pool, key: str = "") -> None:
    """300 jobs under ``key``: two types, four priorities, a third of them not due until later; then 10 held
    RUNNING (the full way counts them in every turn)."""
    draw = random.Random(15)
    specs = [
        JobSpec(job_type=draw.choice(["t", "u"]), priority=draw.randrange(4), concurrency_key=key,
                run_at=NOW + timedelta(seconds=draw.randrange(-600, 300)))
        for _ in range(300)
    ]  # fmt: skip
    await Engine(pool).create_dag(specs)
    async with acquire(pool) as conn:
        await job_queries.claim(conn, job_types=[], worker_id=uuid.uuid4(), limit=10, lease_grace_seconds=5, now=NOW)


async def _expected(conn: Connection, job_types: Sequence[str], limit: int) -> list[uuid.UUID]:
    """A bare queue's grants: the first ``limit`` due PENDING jobs of the types, by priority, run_at, id."""
    rows = await conn.fetch(
        "SELECT id FROM job_rows WHERE status = 'PENDING' AND run_at <= $1"
        " AND (cardinality($2::text[]) = 0 OR job_type = ANY($2::text[]))"
        " ORDER BY priority DESC, run_at, id LIMIT $3",
        NOW, list(job_types), limit,
    )  # fmt: skip
    return [r["id"] for r in rows]


async def _granted(conn: Connection, job_types: Sequence[str], limit: int) -> set[uuid.UUID]:
    """The ids one claim grants, the claim rolled back."""
    transaction = conn.transaction()
    await transaction.start()
    try:
        held = await job_queries.claim(conn, job_types=job_types, worker_id=WORKER, limit=limit,
                                       lease_grace_seconds=5, now=NOW)  # fmt: skip
    finally:
        await transaction.rollback()
    return {job.id for job in held}


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


async def _took_short_way(conn: Connection, job_types: Sequence[str], limit: int) -> bool:
    """Whether the claim, run under EXPLAIN ANALYZE and rolled back, executed its short way and not its full
    way (the candidates of the fair share are read by every full claim and by no short one)."""
    transaction = conn.transaction()
    await transaction.start()
    try:
        plan = await conn.fetchval(
            f"EXPLAIN (ANALYZE, FORMAT JSON) {QUERIES['job_claim']}", list(job_types), WORKER, limit, 5.0, NOW
        )
    finally:
        await transaction.rollback()
    nodes = list(_nodes(plan[0]["Plan"]))  # the connection decodes json
    full = any(n.get("CTE Name") == "candidates" and n["Actual Loops"] > 0 for n in nodes)
    short_scan = [n for n in nodes if n.get("Alias") == "p"]
    short = bool(short_scan) and any(n["Actual Loops"] > 0 and "Index Name" in n for n in _nodes(short_scan[0]))
    assert short != full, "a claim takes exactly one way"
    return short


@pytest.mark.parametrize(("job_types", "limit"), [([], 1), (["t"], 7), ([], 60), (["u"], 1000)])
async def test_one_key_without_limits_takes_the_short_way_to_the_full_way_s_grants(
    pool: Pool, conn: Connection, job_types: list[str], limit: int
) -> None:
    await _mixed_queue(pool)
    expected = await _expected(conn, job_types, limit)
    assert expected, "the queue has due jobs of these types"

    assert await _took_short_way(conn, job_types, limit)
    short = await _granted(conn, job_types, limit)

    await conn.execute(UNRELATED_LIMIT)
    assert not await _took_short_way(conn, job_types, limit)
    full = await _granted(conn, job_types, limit)

    assert short == full == set(expected)


async def test_a_second_key_or_any_limit_row_takes_the_full_way(pool: Pool, conn: Connection) -> None:
    await _mixed_queue(pool, key="tenant-a")
    assert await _took_short_way(conn, [], 5)

    bare_order = await _expected(conn, [], 5)
    newcomer = (await Engine(pool).create_dag([JobSpec(job_type="t", concurrency_key="tenant-b", priority=3,
                                                        run_at=NOW)])).ids  # fmt: skip
    assert not await _took_short_way(conn, [], 5), "two keys share the claim fairly"
    granted = await _granted(conn, [], 5)
    assert set(newcomer.values()) <= granted, "the newcomer's turn comes before the busy key's backlog"
    assert granted - set(newcomer.values()) < set(bare_order)

    await conn.execute("DELETE FROM job_rows WHERE concurrency_key = 'tenant-b'")
    assert await _took_short_way(conn, [], 5)
    await conn.execute("INSERT INTO flow_limits (scope, name, weight, set_by) VALUES ('key', 'tenant-a', 2, 'api')")
    assert not await _took_short_way(conn, [], 5), "a weight alone is a flow_limits row"
