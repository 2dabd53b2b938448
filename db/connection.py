"""Connections and pools: the seam where asyncpg's errors become conveyor's.

Callers own their transactions: every query function in ``db`` takes the connection to run on.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import asyncpg
import orjson

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

from conveyor.db.errors import DatabaseError, DatabaseUnavailable, TransactionConflict, UniqueViolation
from conveyor.db.settings import PostgresSettings
from conveyor.db.sql import QUERIES

Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record]"
Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"

# Errors that mean "the server went away or refused us", as opposed to "the statement was wrong".
# SQLSTATE classes that say "the server cannot serve you now", whatever the exact error: connection
# exceptions (08), insufficient resources (53), operator intervention such as a shutdown (57), system
# errors (58). Retrying later is right for all of them; a statement error is not one of these.
_UNAVAILABLE_SQLSTATE_CLASSES = frozenset({"08", "53", "57", "58"})
_UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.PostgresConnectionError,
    # A connection the server dropped in the middle of a transaction: its rollback then finds the
    # aborted operation still "in progress". Only a fresh connection helps, as with the others.
    asyncpg.exceptions.InternalClientError,
)


@contextmanager
def translate_errors() -> Iterator[None]:
    """Re-raise asyncpg and socket errors as :class:`DatabaseUnavailable` (:class:`TransactionConflict` for a
    transaction PostgreSQL rolled back to break a conflict) / :class:`DatabaseError`."""
    try:
        yield
    except asyncpg.exceptions.UniqueViolationError as exc:
        raise UniqueViolation(str(exc), constraint=exc.constraint_name) from exc
    except asyncpg.exceptions.TransactionRollbackError as exc:
        # A deadlock's victim or a serialization failure (SQLSTATE class 40): nothing was wrong with the
        # statement, and running it again succeeds. As a DatabaseError it would be judged the statement's
        # fault: a completion that lost a deadlock failed its job permanently.
        raise TransactionConflict(f"PostgreSQL rolled the transaction back: {exc}") from exc
    except _UNAVAILABLE as exc:
        raise DatabaseUnavailable(f"PostgreSQL unavailable: {exc}") from exc
    except asyncpg.PostgresError as exc:
        if str(getattr(exc, "sqlstate", ""))[:2] in _UNAVAILABLE_SQLSTATE_CLASSES:
            raise DatabaseUnavailable(f"PostgreSQL unavailable: {exc}") from exc
        raise DatabaseError(f"PostgreSQL error: {exc}") from exc


async def prepare_connection(conn: Connection) -> None:
    """JSON columns in and out as Python values (also inside arrays: jsonb[] parameters).

    In PostgreSQL's binary format, so ``COPY`` (binary only) can carry them: jsonb is a version byte and
    the text, json the text alone.
    """
    await conn.set_type_codec("jsonb", encoder=_dump_jsonb, decoder=_load_jsonb, schema="pg_catalog", format="binary")
    await conn.set_type_codec("json", encoder=dump_json_bytes, decoder=load_json, schema="pg_catalog", format="binary")


_JSONB_VERSION = b"\x01"


def _dump_jsonb(value: Any) -> bytes:
    return _JSONB_VERSION + dump_json_bytes(value)


def _load_jsonb(data: bytes) -> Any:
    return load_json(data[1:])


def dump_json_bytes(value: Any) -> bytes:
    """``value`` as compact JSON (UTF-8): UUIDs and datetimes (ISO 8601) natively, anything else by ``str``.

    orjson first: the batches of ingest and bulk enqueue travel as one jsonb document each, and the
    standard library's encoder was the largest single cost of ingest (bench/RESULTS.md). What orjson
    refuses (an integer beyond 64 bits, a key that is not a string, a lone surrogate) takes the standard
    library's path, which writes what PostgreSQL then judges.
    """
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value, separators=(",", ":"), default=str).encode()  # ASCII: every non-ASCII escaped


def load_json(data: bytes | str) -> Any:
    """A JSON value PostgreSQL sent; numbers orjson cannot hold (beyond a double) by the standard library."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


#: Settings of every session conveyor opens. No JIT compilation: conveyor's statements are short lookups
#: that finish in milliseconds, but PostgreSQL decides on JIT from the planner's cost, and estimates of a
#: job's status are deliberately coarse (migration 0006): the limits listing, 2 ms of work on a million
#: jobs, spent 179 ms compiling itself (on the console benchmark's database, bench/console.py).
SESSION_SETTINGS = {"jit": "off"}


async def connect(settings: PostgresSettings, *, database: str | None = None) -> Connection:
    """One connection, outside any pool (migrations, tests, admin tasks)."""
    with translate_errors():
        conn = await asyncpg.connect(
            settings.dsn(database),
            timeout=settings.connect_timeout_seconds,
            command_timeout=settings.command_timeout_seconds,
            server_settings=SESSION_SETTINGS,
        )
        await prepare_connection(conn)
    return conn


async def create_pool(settings: PostgresSettings) -> Pool:
    """A pool sized by the settings; close it with ``await pool.close()``."""
    with translate_errors():
        pool = await asyncpg.create_pool(
            settings.dsn(),
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            timeout=settings.connect_timeout_seconds,
            command_timeout=settings.command_timeout_seconds,
            init=prepare_connection,
            reset=_keep_session,
            server_settings=SESSION_SETTINGS,
        )
    assert pool is not None  # only None when used without await
    return pool


async def _keep_session(conn: Connection) -> None:
    """What the pool does to a released connection beyond asyncpg's own step (a rollback of a transaction
    left open): nothing.

    asyncpg's default runs a reset statement (unlock advisory locks, close cursors, unlisten, reset
    settings) on every release: a round trip for each statement a worker or ingest runs through
    :func:`acquire`, where nothing outlives the transaction (settings are ``SET LOCAL``, locks are
    transaction locks). The one session state conveyor takes, a leader's advisory lock, lives on a
    connection taken with :func:`hold`, and :func:`give_back` resets that session itself.
    """


#: The longest wait for a free pooled connection. asyncpg's own default is to wait forever, which a pool
#: wedged by a server restart turns into a silent hang; past this, PostgreSQL counts as unavailable and
#: the caller backs off and retries like any other outage.
ACQUIRE_TIMEOUT_SECONDS = 30.0


@asynccontextmanager
async def acquire(pool: Pool, *, wait_seconds: float = ACQUIRE_TIMEOUT_SECONDS) -> AsyncIterator[Connection]:
    """A pooled connection, with errors translated both on acquiring and inside the block.

    Waiting for a free connection ends after ``wait_seconds`` with :class:`DatabaseUnavailable`.
    """
    with translate_errors():
        conn = await _pooled(pool, wait_seconds)
        try:
            yield conn
        finally:
            # Bounded like the wait: a release rolls back a transaction left open, on a server that may hang.
            await pool.release(cast("PoolConnectionProxy[asyncpg.Record]", conn), timeout=wait_seconds)


async def _pooled(pool: Pool, wait_seconds: float) -> Connection:
    """A connection from ``pool``, waiting at most ``wait_seconds`` when none is idle.

    An idle connection is taken without a deadline to bound: the hot paths' case, where a deadline costs a
    timer, and asyncpg's own ``timeout=`` a task per acquire (``wait_for``). Taking it cannot wait: the
    pool's queue hands out an idle connection without yielding to the event loop.
    """
    if pool.get_idle_size():
        return cast(Connection, await pool.acquire())  # the proxy forwards every Connection method
    async with asyncio.timeout(wait_seconds):
        return cast(Connection, await pool.acquire())


async def hold(pool: Pool) -> Connection:
    """Take a connection out of ``pool`` for as long as the caller needs (a session lock); see :func:`give_back`."""
    with translate_errors():
        return cast(
            Connection, await pool.acquire(timeout=ACQUIRE_TIMEOUT_SECONDS)
        )  # the proxy forwards every Connection method


async def give_back(pool: Pool, conn: Connection) -> None:
    """Reset a held connection's session (advisory locks included) and return it; a broken one is discarded."""
    with translate_errors():
        try:
            if not conn.is_closed():
                await conn.execute(conn.get_reset_query())
        finally:
            await pool.release(cast("PoolConnectionProxy[asyncpg.Record]", conn))


async def round_trip(conn: Connection) -> None:
    """Run a real query on ``conn``, or raise :class:`DatabaseUnavailable`."""
    with translate_errors():
        await conn.fetchval(QUERIES["ping"])


async def ping(settings: PostgresSettings) -> None:
    """Run a real query against the server on a connection of its own, or raise :class:`DatabaseUnavailable`."""
    conn = await connect(settings)
    try:
        await round_trip(conn)
    finally:
        await conn.close()
