"""Creating and dropping whole databases: test isolation and `conveyor` admin tasks."""

from __future__ import annotations

from conveyor.db.connection import Connection, translate_errors
from conveyor.db.sql import QUERIES


async def create_database(conn: Connection, name: str, *, template: str) -> None:
    """``CREATE DATABASE name TEMPLATE template`` (identifiers quoted by PostgreSQL's format())."""
    with translate_errors():
        await conn.execute(await conn.fetchval(QUERIES["database_create_statement"], name, template))


async def drop_database(conn: Connection, name: str) -> None:
    """Drop ``name`` if it exists, disconnecting whoever is still connected."""
    with translate_errors():
        await conn.execute(await conn.fetchval(QUERIES["database_drop_statement"], name))
