"""Whole databases: creating and dropping them (test isolation, admin tasks), and proving one answers."""

from __future__ import annotations

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


async def drop_database(conn: Connection, name: str) -> None:
    """Drop ``name`` if it exists, disconnecting whoever is still connected."""
    with translate_errors():
        await conn.execute(await conn.fetchval(QUERIES["database_drop_statement"], name))


async def lock_waiters(conn: Connection) -> int:
    """How many sessions of this database are waiting for a lock now."""
    with translate_errors():
        count: int = await conn.fetchval(QUERIES["lock_waiters"])
    return count
