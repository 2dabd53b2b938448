"""Fixtures shared by every test tier. The services are the real ones `make test` started."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from conveyor import bootstrap
from conveyor import settings as settings_module
from conveyor.db import admin, connection, migrate
from conveyor.db.connection import Connection, Pool
from conveyor.db.settings import PostgresSettings
from conveyor.pipeline.storage.client import s3_client
from conveyor.settings import Settings
from tests import isolation


def pytest_configure(config: pytest.Config) -> None:
    """The suite's own bucket, set before any fixture builds settings."""
    isolation.claim_suite_bucket()


@pytest.fixture(scope="session")
def settings() -> settings_module.Settings:
    """The settings the stack under test was started with (defaults plus any CONVEYOR_* of the run)."""
    return settings_module.load()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``after_everything`` (checks of what the suite leaves behind) run last."""
    items.sort(key=lambda item: item.get_closest_marker("after_everything") is not None)


@pytest.fixture(scope="session", autouse=True)
def _the_suite_leaves_nothing_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    """Give the suite its own subscribed bucket; at the end remove every bucket, group and database it made."""
    if all("tests/unit" in str(item.path) for item in request.session.items):
        yield  # unit tests touch no service
        return
    settings = settings_module.load()
    asyncio.run(bootstrap.bootstrap(settings.kafka, settings.s3, notifications=settings.stack.s3_server == "minio"))
    yield
    left = isolation.clean_up(settings, s3_client(settings.s3))
    asyncio.run(drop_database(settings, TEMPLATE))
    assert not left, f"the suite left these in the stack: {left}"


@pytest.fixture(autouse=True)
def _no_stray_settings_in_unit_env(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    # Unit tests must not depend on the developer's CONVEYOR_* variables.
    if "tests/unit" in str(request.node.path):
        for name in list(os.environ):
            if name.startswith(settings_module.ENV_PREFIX):
                monkeypatch.delenv(name)


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
    await clone_template(settings, name)
    yield settings.postgres.model_copy(update={"database": name, "pool_max_size": 20})
    await drop_database(settings, name)


async def clone_template(settings: Settings, name: str) -> None:
    """Create database ``name`` as a copy of the migrated template."""
    await _admin(settings, lambda conn: admin.create_database(conn, name, template=TEMPLATE))


async def drop_database(settings: Settings, name: str) -> None:
    """Drop database ``name`` (over a fresh connection: a test may have restarted PostgreSQL meanwhile)."""
    await _admin(settings, lambda conn: admin.drop_database(conn, name))


def stack(*args: str) -> None:
    """`conveyor stack ...` as a user runs it (faults: stop and start a service)."""
    subprocess.run([sys.executable, "-m", "conveyor", "stack", *args], check=True, capture_output=True)


def stack_status(env: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """`conveyor stack status --json` by service name (it exits 3 while a service is down: read it anyway)."""
    done = subprocess.run([sys.executable, "-m", "conveyor", "stack", "status", "--json"], env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    return {entry["name"]: entry for entry in json.loads(done.stdout)}


async def stack_async(*args: str) -> None:
    """:func:`stack` without blocking the event loop (services under test keep heartbeating meanwhile)."""
    await asyncio.to_thread(stack, *args)


async def _admin(settings: Settings, action: Callable[[Connection], Awaitable[None]]) -> None:
    conn = await connection.connect(settings.postgres)
    try:
        await action(conn)
    finally:
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
