"""Migrations: applied once each, under a lock, and equal to the schema file readers see."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from conveyor.db import admin, connection, migrate
from conveyor.db.connection import Connection, Pool
from conveyor.db.errors import MigrationError
from conveyor.db.records import JobStatus
from conveyor.db.settings import PostgresSettings
from conveyor.db.sql import QUERIES
from conveyor.pipeline.engine import Engine, JobSpec
from conveyor.settings import Settings


@pytest.fixture
async def empty_database(settings: Settings) -> AsyncIterator[PostgresSettings]:
    name = f"conveyor_empty_{uuid.uuid4().hex[:12]}"
    conn = await connection.connect(settings.postgres)
    try:
        await admin.create_database(conn, name, template="template0")
        yield settings.postgres.model_copy(update={"database": name})
    finally:
        await admin.drop_database(conn, name)
        await conn.close()


async def _shape(conn: Connection) -> dict[str, Any]:
    return {
        "schema_columns": [tuple(r) for r in await conn.fetch(QUERIES["schema_columns"])],
        "schema_indexes": [tuple(r) for r in await conn.fetch(QUERIES["schema_indexes"])],
        "schema_statistics_targets": [tuple(r) for r in await conn.fetch(QUERIES["schema_statistics_targets"])],
        "schema_constraints": [tuple(r) for r in await conn.fetch(QUERIES["schema_constraints"])],
    }


async def test_migrating_from_empty_equals_the_schema_file(
    empty_database: PostgresSettings, database: PostgresSettings
) -> None:
    from_file = await connection.connect(empty_database)
    migrated = await connection.connect(database)
    try:
        await from_file.execute(migrate.reference_schema())
        expected, actual = await _shape(from_file), await _shape(migrated)
    finally:
        await from_file.close()
        await migrated.close()
    actual["schema_columns"] = [c for c in actual["schema_columns"] if c[0] != "schema_migrations"]
    actual["schema_indexes"] = [i for i in actual["schema_indexes"] if i[0] != "schema_migrations"]
    actual["schema_constraints"] = [c for c in actual["schema_constraints"] if c[0] != "schema_migrations"]
    assert actual == expected


async def test_migrate_is_idempotent_and_safe_to_run_concurrently(empty_database: PostgresSettings) -> None:
    conns = [await connection.connect(empty_database) for _ in range(3)]
    try:
        applied = await asyncio.gather(*(migrate.migrate(c) for c in conns))
        assert sorted(len(a) for a in applied) == [0, 0, len(migrate.available())]
        assert await migrate.migrate(conns[0]) == []
    finally:
        for c in conns:
            await c.close()


#: The migration after which ANALYZE gathers nothing of a job's status (see 0006_queue_statistics.sql).
NO_STATUS_STATISTICS = 6


async def _status_statistics(conn: Connection) -> int:
    """Rows of statistics PostgreSQL holds for ``job_rows.status``."""
    count: int = await conn.fetchval(
        "SELECT count(*) FROM pg_stats WHERE tablename = 'job_rows' AND attname = 'status'"
    )
    return count


async def test_an_upgrade_drops_the_statistics_of_a_jobs_status(
    empty_database: PostgresSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Statistics an older release's ANALYZE gathered of the status column are gone after the upgrade, and
    ANALYZE gathers none again: left in place, plans would keep following a quiet moment's mix."""
    shipped = migrate.available()
    conn = await connection.connect(empty_database)
    try:
        monkeypatch.setattr(migrate, "available", lambda: [m for m in shipped if m.version < NO_STATUS_STATISTICS])
        await migrate.migrate(conn)
        await conn.execute("INSERT INTO job_rows (id, job_type, status) "
                           "SELECT gen_random_uuid(), 't', 'COMPLETED' FROM generate_series(1, 1000)")  # fmt: skip
        await conn.execute("ANALYZE job_rows")
        assert await _status_statistics(conn) == 1
        monkeypatch.setattr(migrate, "available", lambda: shipped)
        assert [m.version for m in await migrate.migrate(conn)] == list(range(NO_STATUS_STATISTICS, len(shipped) + 1))
        await conn.execute("ANALYZE job_rows")
        assert await _status_statistics(conn) == 0
    finally:
        await conn.close()


async def test_a_migration_edited_after_it_was_applied_is_refused(
    conn: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, *rest = migrate.available()
    edited = migrate.Migration(first.version, first.name, first.sql + "\n-- an innocent-looking edit\n")
    monkeypatch.setattr(migrate, "available", lambda: [edited, *rest])
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await migrate.migrate(conn)


async def test_this_release_keeps_working_on_jobs_a_later_release_added_a_column_to(engine: Engine, pool: Pool) -> None:
    async with pool.acquire() as conn:
        await conn.execute("ALTER TABLE job_rows ADD COLUMN added_later text NOT NULL DEFAULT 'x'")
    job_id = await engine.create(JobSpec(job_type="t"))
    (claimed,) = await engine.claim(uuid.uuid4(), limit=1)
    assert claimed.id == job_id and await engine.complete(claimed, {"ok": True})
    assert (await engine.get(job_id)).status is JobStatus.COMPLETED
