"""Forward-only schema migrations: ``db/migrations/NNNN_name.sql``, applied in order, once each.

Runs take a transaction-scoped advisory lock, so concurrent ``conveyor migrate`` calls are safe: the
second waits, then finds nothing left to do. Each applied file is recorded with its checksum; a file
edited after it was applied is refused rather than silently skipped.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

from conveyor.db.connection import Connection, connect, translate_errors
from conveyor.db.errors import MigrationError
from conveyor.db.settings import PostgresSettings
from conveyor.db.sql import QUERIES

# An arbitrary constant shared by every conveyor process: the advisory lock that serialises migrations.
MIGRATION_LOCK_KEY = 0x636F6E76  # "conv"

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available() -> list[Migration]:
    """The migrations shipped with conveyor, in version order; raises on gaps or malformed names."""
    found = []
    for file in resources.files("conveyor.db.migrations").iterdir():
        match = _FILE_NAME.match(file.name)
        if match:
            found.append(Migration(int(match[1]), match[2], file.read_text("utf-8")))
        elif file.name.endswith(".sql"):
            raise MigrationError(f"migration file {file.name!r} is not named NNNN_name.sql")
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise MigrationError(f"migration {expected:04d} is missing (found {migration.version:04d})")
    return found


async def migrate(conn: Connection) -> list[Migration]:
    """Apply every pending migration in one transaction; return those applied (empty when up to date)."""
    with translate_errors():
        async with conn.transaction():
            # Lock first: two concurrent CREATE TABLE IF NOT EXISTS can still collide.
            await conn.fetchval(QUERIES["migration_lock"], MIGRATION_LOCK_KEY)
            await conn.execute(QUERIES["migration_table_create"])
            applied = {row["version"]: row["checksum"] for row in await conn.fetch(QUERIES["migration_applied"])}
            pending = [m for m in available() if _is_pending(m, applied)]
            for migration in pending:
                await conn.execute(migration.sql)
                await conn.execute(QUERIES["migration_record"], migration.version, migration.name, migration.checksum)
    return pending


async def migrate_database(settings: PostgresSettings) -> list[Migration]:
    """:func:`migrate` on a connection of its own to the configured database."""
    conn = await connect(settings)
    try:
        return await migrate(conn)
    finally:
        await conn.close()


def _is_pending(migration: Migration, applied: dict[int, str]) -> bool:
    checksum = applied.get(migration.version)
    if checksum is None:
        return True
    if checksum != migration.checksum:
        raise MigrationError(
            f"migration {migration.version:04d}_{migration.name} changed after it was applied; "
            "migrations are forward-only: add a new one instead"
        )
    return False


def reference_schema() -> str:
    """``db/schema.sql``: the whole current schema in one file, for readers and the migration test."""
    return resources.files("conveyor.db").joinpath("schema.sql").read_text("utf-8")
