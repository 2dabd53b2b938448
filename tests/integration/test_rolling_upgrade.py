"""Upgrades: the previous release and this one on one database, as during a rolling upgrade.

The previous release is the last commit that landed before this layout, built from the repository's own
history into a virtualenv of its own. It migrates a database and works in it; this release's migrations
then apply to that database (only its own, no migration changed under it), and an old and a new worker
drain one queue together.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from conveyor.db import admin, connection, migrate
from conveyor.db.records import JobFilter, JobStatus, WorkerStatus
from conveyor.db.settings import PostgresSettings
from conveyor.pipeline.engine import Engine
from conveyor.settings import Settings
from tests.conftest import drop_database
from tests.integration.conftest import FAST, Workers, executions, wait_until
from tests.integration.test_worker_processes import create

ROOT = Path(__file__).resolve().parents[2]
#: The release before the one `conveyor` package (top-level db, pipeline, ingest and conveyor packages).
PREVIOUS_RELEASE = "ff428cb039edb41cd4c2bad8061b3a3e841edfc9"
#: The last migration that release shipped.
PREVIOUS_RELEASE_MIGRATIONS = 2
pytestmark = pytest.mark.timeout(600)


@dataclass(frozen=True)
class Release:
    source: Path
    python: Path

    def env(self, database: str) -> dict[str, str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_", "PYTHONPATH"))}
        return {**clean, **FAST, "CONVEYOR_POSTGRES__DATABASE": database, "PYTHONPATH": str(self.source)}

    def worker(self, database: str, *args: str) -> subprocess.Popen[bytes]:
        """A `conveyor worker` of this release, running the test handlers of its own tree."""
        argv = [str(self.python), "-m", "conveyor", "worker", "--job-types", "test.noop,test.sleep", *args]
        return subprocess.Popen(argv, env=self.env(database), cwd=self.source, stderr=subprocess.DEVNULL)

    def conveyor(self, database: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.python), "-m", "conveyor", *args], env=self.env(database), cwd=self.source,
                              capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def previous(tmp_path_factory: pytest.TempPathFactory) -> Release:
    home = tmp_path_factory.mktemp("previous-release")
    source, venv = home / "src", home / "venv"
    source.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", PREVIOUS_RELEASE], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin/pip"), "install", "-q", "-c", str(source / "constraints.txt"), str(source)],
                   check=True, capture_output=True)  # fmt: skip
    return Release(source, venv / "bin/python")


async def test_this_releases_migrations_apply_to_a_database_the_previous_release_made_and_filled(
    previous: Release, settings: Settings, tmp_path: Path
) -> None:
    name = f"conveyor_upgrade_{uuid.uuid4().hex[:8]}"
    await _create_empty(settings, name)
    try:
        migrated = previous.conveyor(name, "migrate")
        assert migrated.returncode == 0 and "applied 0001_job_engine" in migrated.stdout, migrated.stderr
        database = settings.postgres.model_copy(update={"database": name})
        # Jobs as the previous release's own statements wrote them: this release's need this release's schema.
        ids = await _insert_as_previous_release(database, 50, "test.noop", log=str(tmp_path / "runs.log"))
        async with Engine.open(database, settings.engine, settings.redis) as engine:
            old = previous.worker(name)
            try:
                await wait_until(lambda: _completed_before_migrating(database, 50), within=60,
                                 what="the old worker's completions")  # fmt: skip
            finally:
                old.terminate()
                old.wait(60)
            applied = await migrate.migrate_database(database)  # refused if a migration changed under it
            newer = [m.version for m in migrate.available() if m.version > PREVIOUS_RELEASE_MIGRATIONS]
            assert [m.version for m in applied] == newer, "exactly this release's own migrations apply"
            assert await migrate.migrate_database(database) == [], "and then nothing is pending"
            jobs = {str(j.id): j for j in await engine.list_jobs(JobFilter(job_type="test.noop"), limit=100)}
            assert set(jobs) == set(ids) and {j.status for j in jobs.values()} == {JobStatus.COMPLETED}
            (worker,) = await engine.workers.all(include_stopped=True)
            assert worker.status is WorkerStatus.STOPPED and worker.version == "0.1.0", "the old worker's row reads"
    finally:
        await drop_database(settings, name)


async def test_an_old_and_a_new_worker_drain_one_queue_during_a_rolling_upgrade(
    previous: Release, engine: Engine, workers: Workers, database: PostgresSettings, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    old = previous.worker(database.database, "--concurrency", "8")
    try:
        new = workers.start("--concurrency", "8")
        await wait_until(lambda: _active_workers(engine, 2), within=60, what="both releases' workers registered")
        # Only now, and 10 ms each: one worker's 8 slots alone would take 2.5 s, and the other joins within its
        # 0.5 s poll even if it missed the wake-up. (No-op jobs were drained by one alone before the other woke.)
        ids = await create(engine, 2000, "test.sleep", seconds=0.01, log=str(log))
        await wait_until(lambda: _completed(engine, 2000), within=180, what="2,000 jobs drained by both")
    finally:
        old.terminate()
        old.wait(60)
    runs = executions(log)
    assert all(runs[(job_id, "done")] == 1 for job_id in ids), "each job ran exactly once"
    pids = {line.split()[2] for line in log.read_text().splitlines()}
    assert pids == {str(old.pid), str(new.pid)}, "both releases did work"
    failed = await engine.list_jobs(JobFilter(status=JobStatus.FAILED), limit=10)
    assert failed == [] and all(not j.errors for j in await engine.list_jobs(JobFilter(), limit=5000))


async def _active_workers(engine: Engine, count: int) -> bool:
    return sum(w.status is WorkerStatus.ACTIVE for w in await engine.workers.all()) >= count


async def _completed(engine: Engine, count: int) -> bool:
    return len(await engine.list_jobs(JobFilter(status=JobStatus.COMPLETED), limit=100_000)) >= count


async def _completed_before_migrating(database: PostgresSettings, count: int) -> bool:
    conn = await connection.connect(database)
    try:
        done: int = await conn.fetchval("SELECT count(*) FROM jobs WHERE status = 'COMPLETED'")
    finally:
        await conn.close()
    return done >= count


async def _insert_as_previous_release(
    database: PostgresSettings, count: int, job_type: str, **params: str
) -> list[str]:
    conn = await connection.connect(database)
    try:
        rows = await conn.fetch(
            "INSERT INTO jobs (id, job_type, payload, status, timeout_ms) "
            "SELECT gen_random_uuid(), $1, $2::jsonb, 'PENDING', 120000 FROM generate_series(1, $3) RETURNING id",
            job_type, {"params": params}, count,
        )  # fmt: skip
    finally:
        await conn.close()
    return [str(r["id"]) for r in rows]


async def _create_empty(settings: Settings, name: str) -> None:
    conn = await connection.connect(settings.postgres)
    try:
        await admin.create_database(conn, name, template="template0")
    finally:
        await conn.close()
