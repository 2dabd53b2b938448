"""The pool seam: waiting for a connection is bounded, and an exhausted pool reads as PostgreSQL unavailable."""

from __future__ import annotations

import time

import asyncpg
import pytest

from conveyor.db import connection, leadership
from conveyor.db.errors import DatabaseUnavailable
from conveyor.db.settings import PostgresSettings


async def test_waiting_for_a_pooled_connection_ends_at_its_deadline(database: PostgresSettings) -> None:
    pool = await connection.create_pool(database.model_copy(update={"pool_min_size": 1, "pool_max_size": 1}))
    try:
        async with connection.acquire(pool):
            started = time.monotonic()
            with pytest.raises(DatabaseUnavailable):
                async with connection.acquire(pool, wait_seconds=0.3):
                    pass
            assert 0.25 < time.monotonic() - started < 5, "it waited its deadline, not forever"
        async with connection.acquire(pool) as conn:  # freed again: served at once
            await connection.round_trip(conn)
    finally:
        await pool.close()


def test_a_connection_left_mid_operation_by_a_server_crash_is_unavailable_not_a_crash() -> None:
    """asyncpg's "another operation is in progress" after the server dropped a transaction: the ingest
    consumer died of it during a PostgreSQL restart; it must be retried on a fresh connection."""
    with pytest.raises(DatabaseUnavailable), connection.translate_errors():
        raise asyncpg.exceptions.InternalClientError("cannot switch to state 15; another operation (2) is in progress")


async def test_a_held_session_lock_is_released_when_its_connection_is_given_back(database: PostgresSettings) -> None:
    """A resigning leader's lock must reach other processes: the pool keeps the connection (it skips
    asyncpg's reset on release), so giving it back must reset the session itself."""
    pool = await connection.create_pool(database.model_copy(update={"pool_min_size": 1, "pool_max_size": 1}))
    other = await connection.connect(database)
    try:
        held = await connection.hold(pool)
        assert await leadership.try_lock(held, 4242)
        assert not await leadership.try_lock(other, 4242), "held by the pool's session"
        await connection.give_back(pool, held)
        assert await leadership.try_lock(other, 4242), "another session takes it once given back"
    finally:
        await other.close()
        await pool.close()


#: A statement PostgreSQL costs past its default ``jit_above_cost`` (100,000): ten million generated rows.
_COSTLY = "EXPLAIN SELECT count(*) FROM generate_series(1, 10000000) AS g"


async def test_no_session_conveyor_opens_compiles_its_statements(database: PostgresSettings) -> None:
    """JIT is decided from the planner's cost, and a job's status carries no statistics (migration 0006):
    the limits listing, 2 ms of reading on a million jobs, spent 179 ms compiling itself. Every session
    plans without it: a lone connection, a pooled one, and one given back after a leader held it."""
    pool = await connection.create_pool(database.model_copy(update={"pool_min_size": 1, "pool_max_size": 1}))
    lone = await connection.connect(database)
    try:
        held = await connection.hold(pool)
        await connection.give_back(pool, held)
        async with connection.acquire(pool) as pooled:
            plans = [await _plan_text(c) for c in (lone, pooled)]
        assert all("JIT" not in plan for plan in plans), plans
        assert await lone.fetchval("SHOW jit_above_cost") == "100000", "the statement is costly enough to JIT"
    finally:
        await lone.close()
        await pool.close()


async def _plan_text(conn: connection.Connection) -> str:
    return "\n".join(row[0] for row in await conn.fetch(_COSTLY))
