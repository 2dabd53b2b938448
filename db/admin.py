"""Whole databases: creating and dropping them (test isolation, admin tasks), and proving one answers."""

from __future__ import annotations

import asyncio

import asyncpg

from conveyor.db.connection import Connection, ping, translate_errors
from conveyor.db.settings import PostgresSettings
from conveyor.db.sql import QUERIES


async def check_login(settings: PostgresSettings) -> None:
    """Log in as the configured user and run a query, or raise :class:`~conveyor.db.errors.DatabaseUnavailable`."""
    await ping(settings)


async def create_database(conn: Connection, name: str, *, template: str) -> None:
    """``CREATE DATABASE name TEMPLATE template`` (identifiers quoted by PostgreSQL's format())."""
    with translate_errors():
        await conn.execute(await conn.fetchval(QUERIES["database_create_statement"], name, template))


# An autovacuum worker belongs to no role, so a non-superuser's ``DROP DATABASE ... WITH (FORCE)`` may not
# signal it (PostgreSQL 15 refuses with "must be a member of the role..."); it leaves within moments.
_DROP_ATTEMPTS = 50
_DROP_RETRY_SECONDS = 0.1


async def drop_database(conn: Connection, name: str) -> None:
    """Drop ``name`` if it exists, disconnecting whoever is still connected.

    A backend this role may not terminate (an autovacuum worker on a fresh clone) is waited out for up to
    five seconds; after that the refusal is raised.
    """
    statement = await conn.fetchval(QUERIES["database_drop_statement"], name)
    for _ in range(_DROP_ATTEMPTS - 1):
        try:
            await conn.execute(statement)
        except asyncpg.InsufficientPrivilegeError:
            await asyncio.sleep(_DROP_RETRY_SECONDS)
        else:
            return
    with translate_errors():
        await conn.execute(statement)


async def lock_waiters(conn: Connection) -> int:
    """How many sessions of this database are waiting for a lock now."""
    with translate_errors():
        count: int = await conn.fetchval(QUERIES["lock_waiters"])
    return count
