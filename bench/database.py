"""A fresh database per benchmark, so each one measures an empty, freshly migrated schema."""

from __future__ import annotations

from conveyor.db import admin, connection, migrate
from conveyor.db.settings import PostgresSettings


async def fresh_database(settings: PostgresSettings, name: str, *, migrated: bool = True) -> PostgresSettings:
    """Drop and re-create ``name`` (migrated unless told otherwise); settings pointing at it."""
    conn = await connection.connect(settings)
    try:
        await admin.drop_database(conn, name)
        await admin.create_database(conn, name, template="template0")
    finally:
        await conn.close()
    scoped = settings.model_copy(update={"database": name, "pool_max_size": 20, "pool_min_size": 1})
    if migrated:
        conn = await connection.connect(scoped)
        try:
            await migrate.migrate(conn)
        finally:
            await conn.close()
    return scoped


async def drop_database(settings: PostgresSettings, name: str) -> None:
    """Drop a benchmark's database when it is done with it."""
    conn = await connection.connect(settings)
    try:
        await admin.drop_database(conn, name)
    finally:
        await conn.close()
