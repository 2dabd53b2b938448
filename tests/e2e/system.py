"""The whole system as users start it (`conveyor run`), isolated on its own bucket, database and group."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from minio import Minio

from bench.database import fresh_database
from conveyor.db.connection import connect
from conveyor.db.jobs import list_jobs
from conveyor.db.records import JobFilter, JobRow
from conveyor.pipeline.storage.client import s3_client
from conveyor.settings import Settings
from tests import isolation
from tests.conftest import drop_database
from tests.integration.api_server import free_port
from tests.integration.conftest import park_group_at_end

TOKEN = "e2e-token"
PIPELINES = """
[[pipeline]]
name = "fingerprint"
match = { suffixes = [".csv", ".jsonl", ".png", ".zip", ".bin", ".gz"] }
  [[pipeline.jobs]]
  name = "checksum"
  type = "checksum"
  [[pipeline.jobs]]
  name = "inspect"
  type = "inspect"
  depends_on = ["checksum"]

[[pipeline]]
name = "csv"
match = { suffixes = [".csv"] }
  [[pipeline.jobs]]
  name = "profile"
  type = "csv.profile"
  concurrency_key = "{bucket}/{prefix1}"

[[pipeline]]
name = "jsonl"
match = { suffixes = [".jsonl"] }
  [[pipeline.jobs]]
  name = "validate"
  type = "jsonl.validate"

[[pipeline]]
name = "archive"
match = { suffixes = [".zip"] }
  [[pipeline.jobs]]
  name = "extract"
  type = "archive.extract"
  max_retries = 1
"""


def expected_steps(key: str) -> set[tuple[str, str]]:
    """The (pipeline, step) pairs the e2e rules create for an upload of ``key``."""
    suffix = key.rsplit(".", 1)[-1]
    steps = {("fingerprint", "checksum"), ("fingerprint", "inspect")} if f".{suffix}" in PIPELINES else set()
    extra = {"csv": ("csv", "profile"), "jsonl": ("jsonl", "validate"), "zip": ("archive", "extract")}
    return steps | ({extra[suffix]} if suffix in extra else set())


@dataclass
class System:
    settings: Settings
    bucket: str
    api: str
    process: subprocess.Popen[bytes]
    s3: Minio
    #: The environment `conveyor run` was started with, and where its standard output goes.
    env: dict[str, str]
    output: Path

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.api, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)

    def upload_many(self, objects: dict[str, bytes | int], threads: int = 8) -> None:
        """Upload ``objects`` (bytes, or a size for generated content), retrying while the server is down."""
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda item: self.upload(*item), objects.items()))

    def upload(self, key: str, data: bytes | int, attempts: int = 60) -> None:
        """One PUT, retried while the S3 server is down (as a user would)."""
        for attempt in range(attempts):
            try:
                if isinstance(data, int):
                    self.s3.put_object(self.bucket, key, io.BufferedReader(_Zeros(data)), -1, part_size=16 << 20)
                else:
                    self.s3.put_object(self.bucket, key, io.BytesIO(data), len(data))
            except Exception:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.5)
            else:
                return

    def jobs(self) -> list[JobRow]:
        return asyncio.run(_jobs(self.settings, self.bucket))

    def wait_until_settled(self, keys: set[str], within: float) -> list[JobRow]:
        """Wait until every key has all its expected jobs, and every job of the bucket is final."""
        deadline, jobs = time.monotonic() + within, []
        while time.monotonic() < deadline:
            try:
                jobs = self.jobs()
            except Exception:  # noqa: BLE001 - PostgreSQL may be restarting
                time.sleep(1)
                continue
            have = {(j.source_key, j.pipeline, j.step) for j in jobs}
            complete = all((key, *step) in have for key in keys for step in expected_steps(key))
            if complete and all(j.status.is_final for j in jobs):
                return jobs
            time.sleep(1)
        live = [j for j in jobs if not j.status.is_final]
        raise AssertionError(f"not settled after {within}s: {len(jobs)} jobs, {len(live)} not final: {live[:3]}")

    def pids(self, command: str) -> list[int]:
        """Pids of this system's processes running ``conveyor <command>``."""
        found = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    cmd = (proc / "cmdline").read_bytes().split(b"\0")
                    environ = (proc / "environ").read_bytes()
                except OSError:
                    continue
                if b"conveyor" in cmd and command.encode() in cmd and self.bucket.encode() in environ:
                    found.append(int(proc.name))
        return found


async def _jobs(settings: Settings, bucket: str) -> list[JobRow]:
    conn = await connect(settings.postgres)
    try:
        return await list_jobs(conn, JobFilter(source_bucket=bucket), limit=200_000)
    finally:
        await conn.close()


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.remaining = size

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        size = min(len(target), self.remaining)
        target[:size] = b"\x5a" * size
        self.remaining -= size
        return size


#: Loop intervals short enough for a test to watch heartbeats, rescues and scaling happen.
QUICK_INTERVALS = {
    "CONVEYOR_WORKER__POLL_INTERVAL_SECONDS": "0.5", "CONVEYOR_WORKER__HEARTBEAT_INTERVAL_SECONDS": "1",
    "CONVEYOR_WORKER__AUTOSCALE_INTERVAL_SECONDS": "1", "CONVEYOR_ENGINE__RESCUE_INTERVAL_SECONDS": "1",
    "CONVEYOR_ENGINE__WORKER_LOST_AFTER_SECONDS": "6", "CONVEYOR_API__CLUSTER_METRICS_INTERVAL_SECONDS": "1",
}  # fmt: skip


@contextmanager
def running_system(
    settings: Settings, tmp: Path, *, autoscale: str = "2:3", quick_intervals: bool = True, **extra_env: str
) -> Iterator[System]:
    """`conveyor run` on a database, bucket and consumer group of its own; ``autoscale`` its worker processes
    (two by default: tests see work shared between processes). ``quick_intervals`` shortens its loops'
    intervals so tests see heartbeats, rescues and scaling within seconds; a benchmark measures the defaults."""
    run_id = uuid.uuid4().hex[:8]
    bucket, database, group = isolation.bucket("e2e"), f"conveyor_e2e_{run_id}", isolation.group("e2e")
    # Migrated from empty rather than cloned from the test template: `make bench` runs this without pytest.
    asyncio.run(fresh_database(settings.postgres, database))
    asyncio.run(park_group_at_end(settings, group))
    rules = tmp / "pipelines.toml"
    rules.write_text(PIPELINES)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(
        CONVEYOR_POSTGRES__DATABASE=database, CONVEYOR_INGEST__GROUP_ID=group, CONVEYOR_S3__BUCKETS=f'["{bucket}"]',
        CONVEYOR_API__PORT=str(port), CONVEYOR_API__TOKENS=f'["{TOKEN}"]', CONVEYOR_INGEST__PIPELINES_FILE=str(rules),
        CONVEYOR_INGEST__DEAD_LETTER_UNROUTED="true", CONVEYOR_WORKER__CONCURRENCY="8",
        CONVEYOR_WORKER__SHUTDOWN_GRACE_SECONDS="5", **(QUICK_INTERVALS if quick_intervals else {}), **extra_env,
    )  # fmt: skip
    argv = [sys.executable, "-m", "conveyor", "run", "--no-stack", "--no-samples", "--autoscale", autoscale]
    output = tmp / "run.out"
    process = subprocess.Popen(argv, env=env, stdout=output.open("wb"), stderr=(tmp / "run.log").open("wb"))
    scoped = settings.model_copy(update={"postgres": settings.postgres.model_copy(update={"database": database})})
    system = System(scoped, bucket, f"http://127.0.0.1:{port}", process, s3_client(settings.s3, retries=0), env, output)
    try:
        _wait_for_api(system)
        yield system
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(90)
        except subprocess.TimeoutExpired:
            process.kill()
        asyncio.run(drop_database(settings, database))
        isolation.remove_buckets(system.s3, [bucket])
        asyncio.run(isolation.remove_groups(settings, [group]))


def _wait_for_api(system: System) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if system.process.poll() is not None:
            raise RuntimeError("conveyor run exited during start-up")
        try:
            if httpx.get(f"{system.api}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError("conveyor run's API never became healthy")
