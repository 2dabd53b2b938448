"""`conveyor stack` as a user drives it: idempotent up, truthful status, down that leaves nothing behind.

These tests run a second stack (versitygw as its S3 server) on its own ports and state dir, so the
stack the rest of the suite uses is never disturbed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from conveyor import settings as settings_module
from conveyor.db.connection import connect
from conveyor.db.jobs import list_jobs
from conveyor.db.records import JobFilter
from conveyor.pipeline.storage.client import s3_client
from tests.conftest import stack_status
from tests.integration.conftest import put_bytes
from tests.integration.test_ingest import CSV_ONLY as CSV
from tests.integration.test_ingest import running_ingestor
from tests.integration.test_reconcile import jobs_by_key, reconcile_settings, reconciler, sweep_until_idle, upload

SECOND_STACK = {
    "CONVEYOR_POSTGRES__PORT": "15632",
    "CONVEYOR_REDIS__URL": "redis://127.0.0.1:16579/0",
    "CONVEYOR_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:19292",
    "CONVEYOR_STACK__KAFKA_CONTROLLER_PORT": "19293",
    "CONVEYOR_S3__ENDPOINT": "http://127.0.0.1:19200",
    "CONVEYOR_STACK__S3_SERVER": "versitygw",
    "CONVEYOR_STACK__KAFKA_HEAP": "384m",
    "CONVEYOR_STACK__PROMETHEUS_PORT": "19390",
}


class Cli:
    """Runs `python -m conveyor` with the second stack's environment."""

    def __init__(self, state_dir: Path) -> None:
        self.env = {**os.environ, **SECOND_STACK, "CONVEYOR_STACK__STATE_DIR": str(state_dir)}

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "conveyor", *args], env=self.env, capture_output=True, text=True, check=check
        )

    def settings(self) -> settings_module.Settings:
        overrides = {k: v for k, v in self.env.items() if k.startswith(settings_module.ENV_PREFIX)}
        previous = {k: os.environ.get(k) for k in overrides}
        os.environ.update(overrides)
        try:
            return settings_module.load()
        finally:
            for key, value in previous.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    # Under /var/tmp-like space, not /tmp of another user: PostgreSQL runs as `postgres` when we are root.
    state_dir = tmp_path_factory.mktemp("second-stack")
    state_dir.chmod(0o755)
    for parent in state_dir.parents:
        if parent == Path(parent.anchor):
            break
        parent.chmod(parent.stat().st_mode | 0o055)
    runner = Cli(state_dir)
    yield runner
    runner("stack", "reset", check=False)


def _status(cli: Cli) -> dict[str, dict[str, object]]:
    return stack_status(cli.env)


def _our_pids(state_dir: str) -> list[int]:
    """Every live process whose command line mentions the second stack's state dir or ports."""
    markers = [state_dir, *(v.rsplit(":", 1)[-1].split("/")[0] for v in SECOND_STACK.values() if ":" in v)]
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "pytest" not in cmdline and any(marker in cmdline for marker in markers):
            pids.append(int(proc.name))
    return pids


def test_up_twice_is_a_no_op_and_status_is_truthful(cli: Cli) -> None:
    first = cli("stack", "up")
    assert "started postgres, redis, kafka, versitygw, prometheus" in first.stderr
    statuses = _status(cli)
    assert {name: s["state"] for name, s in statuses.items()} == dict.fromkeys(
        ["postgres", "redis", "kafka", "versitygw", "prometheus"], "running"
    )

    second = cli("stack", "up")
    assert "already running" in second.stderr
    assert {name: s["pid"] for name, s in _status(cli).items()} == {name: s["pid"] for name, s in statuses.items()}

    # Kill one server behind the stack's back: status must say so, and `up` must bring back only that one.
    redis_pid = statuses["redis"]["pid"]
    assert isinstance(redis_pid, int)
    os.kill(redis_pid, signal.SIGKILL)
    assert _status(cli)["redis"]["state"] == "stopped"
    assert cli("stack", "status", check=False).returncode != 0
    assert "started redis in" in cli("stack", "up").stderr


def test_versitygw_publishes_plain_s3_records_with_the_raw_key(cli: Cli) -> None:
    settings = cli.settings()
    cli("bootstrap")
    name = f"{uuid.uuid4().hex}/a b+c%20d ü.txt"

    async def upload_and_read() -> list[dict[str, object]]:
        consumer = AIOKafkaConsumer(
            settings.kafka.events_topic, bootstrap_servers=settings.kafka.bootstrap_servers,
            auto_offset_reset="earliest", enable_auto_commit=False,
        )  # fmt: skip
        await consumer.start()
        try:
            await put_bytes(s3_client(settings.s3), settings.s3.buckets[0], name, b"hello")
            seen: list[dict[str, object]] = []
            for _ in range(20):
                for messages in (await consumer.getmany(timeout_ms=500)).values():
                    seen += [json.loads(m.value) for m in messages]
                if any(_record_key(v) == name for v in seen):
                    break
            return seen
        finally:
            await consumer.stop()

    values = asyncio.run(upload_and_read())
    ours = [v for v in values if _record_key(v) == name]
    assert ours, f"no versitygw event for {name!r} in {values!r}"
    assert "EventName" not in ours[0], "versitygw sends the plain S3 shape, without MinIO's wrapper"


def _record_key(value: dict[str, object]) -> object:
    records = value.get("Records")
    if not isinstance(records, list) or not records:
        return None
    return records[0]["s3"]["object"]["key"]


def test_the_upload_flow_works_with_versitygw_as_the_s3_server(cli: Cli) -> None:
    settings = cli.settings()
    cli("migrate")
    cli("bootstrap")
    name = f"{uuid.uuid4().hex}/report+final 100% ü.csv"

    async def upload_and_ingest() -> list[tuple[str | None, str | None, str | None]]:
        await put_bytes(s3_client(settings.s3), settings.s3.buckets[0], name, b"a,b\n1,2\n")
        async with running_ingestor(settings) as ingestor:
            conn = await connect(settings.postgres)
            try:
                for _ in range(100):
                    await ingestor.run_once(timeout_ms=200)
                    jobs = await list_jobs(conn, JobFilter(source_key=name), limit=10)
                    if len(jobs) == 3:
                        return sorted((j.pipeline, j.step, j.source_key) for j in jobs)
            finally:
                await conn.close()
        return []

    jobs = asyncio.run(upload_and_ingest())
    assert jobs == [("csv", "profile", name), ("fingerprint", "checksum", name), ("fingerprint", "inspect", name)]


def test_the_reconciler_sweeps_versitygw_and_its_late_events_start_nothing(cli: Cli) -> None:
    """versitygw (plain S3 records, no MinIO metrics): a sweep starts each upload, its events come late."""
    prefix = f"{uuid.uuid4().hex[:8]}/"
    settings = reconcile_settings(cli.settings(), prefix, server_metrics_path="")
    cli("migrate")
    cli("bootstrap")
    keys = [f"{prefix}swept {i} ü+.csv" for i in range(3)]

    async def sweep_then_ingest() -> tuple[dict[str, int], float]:
        async with reconciler(settings, CSV) as made:
            await made.engine.sweeps.watch([settings.s3.buckets[0]])
            await upload(s3_client(settings.s3), settings.s3.buckets[0], keys)
            await sweep_until_idle(made)
            swept = await jobs_by_key(made.engine, settings.s3.buckets[0], keys)
            async with running_ingestor(settings) as ingestor:
                for _ in range(100):
                    await ingestor.run_once(timeout_ms=200)
                    if ingestor.metrics.same_upload._value.get() >= len(keys):
                        break
            assert await jobs_by_key(made.engine, settings.s3.buckets[0], keys) == swept, "late events started more"
            return swept, ingestor.metrics.same_upload._value.get()

    swept, late = asyncio.run(sweep_then_ingest())
    assert swept == dict.fromkeys(keys, 2) and late == len(keys)


#: A long-lived process that starts PostgreSQL itself and lives on, as `conveyor run` does.
PARENT = """
import asyncio, sys, time
from conveyor.settings import load
from conveyor.stack.manager import Stack
asyncio.run(Stack(load()).up(["postgres"]))
print("up", flush=True)
time.sleep(300)
"""


def _zombie_or_alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "RSDZT"
    except OSError:
        return False


def test_a_crashed_postgres_under_a_living_parent_is_reaped_and_comes_back_with_stack_up(cli: Cli) -> None:
    cli("stack", "down", "postgres")
    parent = subprocess.Popen([sys.executable, "-c", PARENT], env=cli.env, stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "up"
        postmaster = int(str(_status(cli)["postgres"]["pid"]))
        os.kill(postmaster, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _zombie_or_alive(postmaster) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _zombie_or_alive(postmaster), "the dead postmaster was reaped, not left a zombie holding its pid"
        assert _status(cli)["postgres"]["state"] != "running"
        deadline, restarted = time.monotonic() + 60, cli("stack", "up", "postgres", check=False)
        while restarted.returncode != 0 and time.monotonic() < deadline:  # its orphaned backends are exiting
            time.sleep(1)
            restarted = cli("stack", "up", "postgres", check=False)
        assert restarted.returncode == 0, restarted.stderr
        back = _status(cli)["postgres"]
        assert back["state"] == "running" and back["pid"] != postmaster
        assert parent.poll() is None, "while the process that started it lived on"
    finally:
        parent.kill()
        parent.wait()


def test_down_leaves_no_process_of_ours(cli: Cli) -> None:
    state_dir = cli.env["CONVEYOR_STACK__STATE_DIR"]
    cli("stack", "up")
    assert _our_pids(state_dir), "the stack should be running before `down`"

    result = cli("stack", "down")

    assert "stopped" in result.stderr
    assert _our_pids(state_dir) == []
    assert {s["state"] for s in _status(cli).values()} == {"stopped"}
    assert "nothing" in cli("stack", "down").stderr
