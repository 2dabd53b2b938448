"""Real PostgreSQL for engine tests: a migrated template database, cloned fresh for each test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from conveyor.settings import Settings
from db import admin, connection, migrate
from db.connection import Connection, Pool
from db.settings import PostgresSettings
from pipeline.engine import Engine
from pipeline.retry import RetryPolicies, RetryPolicy

TEMPLATE = "conveyor_test_template"


@pytest.fixture(scope="session")
async def template_db(settings: Settings) -> str:
    """A database with every migration applied, created once per test session."""
    conn = await connection.connect(settings.postgres)
    try:
        await admin.drop_database(conn, TEMPLATE)
        await admin.create_database(conn, TEMPLATE, template="template0")
    finally:
        await conn.close()
    template = await connection.connect(settings.postgres, database=TEMPLATE)
    try:
        await migrate.migrate(template)
    finally:
        await template.close()
    return TEMPLATE


@pytest.fixture
async def database(settings: Settings, template_db: str) -> AsyncIterator[PostgresSettings]:
    """Settings pointing at a fresh database cloned from the template, dropped after the test."""
    name = f"conveyor_test_{uuid.uuid4().hex[:12]}"
    conn = await connection.connect(settings.postgres)
    try:
        await admin.create_database(conn, name, template=template_db)
        yield settings.postgres.model_copy(update={"database": name, "pool_max_size": 20})
    finally:
        await admin.drop_database(conn, name)
        await conn.close()


@pytest.fixture
async def pool(database: PostgresSettings) -> AsyncIterator[Pool]:
    created = await connection.create_pool(database)
    yield created
    await created.close()


@pytest.fixture
async def conn(database: PostgresSettings) -> AsyncIterator[Connection]:
    opened = await connection.connect(database)
    yield opened
    await opened.close()


class FakeClock:
    """An injectable clock that moves only when told."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


#: Deterministic backoff for tests: 10 s, 20 s, 40 s ... capped at 60 s, no jitter.
TEST_RETRY = RetryPolicies(default=RetryPolicy(base_seconds=10, factor=2, cap_seconds=60, jitter=0))


@pytest.fixture
def engine(pool: Pool, clock: FakeClock) -> Engine:
    return Engine(pool, retry=TEST_RETRY, lease_grace_seconds=5, clock=clock)
