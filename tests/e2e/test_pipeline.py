"""End to end: uploads to MinIO become processed results through Kafka, PostgreSQL and the workers.

One system (`conveyor run`, as users start it) serves the whole module: mixed uploads first, then bad
input, then a run under faults; last, Prometheus must have data for every dashboard query.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from conveyor.db.connection import connect
from conveyor.db.jobs import list_jobs
from conveyor.db.records import JobFilter, JobRow, JobStatus
from conveyor.db.workers import list_workers
from conveyor.samples import png, zip_of
from conveyor.settings import Settings
from tests.conftest import stack, stack_status
from tests.e2e.system import System, expected_steps, running_system

pytestmark = pytest.mark.timeout(900)
NAMES = ["report final", "a+b", "100% done", "ünïcødé 東京", "deep/er/and/deeper", "plain"]


@pytest.fixture(scope="module")
def system(settings: Settings, tmp_path_factory: pytest.TempPathFactory, template_db: str) -> Iterator[System]:
    with running_system(settings, tmp_path_factory.mktemp("e2e")) as running:
        yield running


def mixed_uploads(count: int, rng: random.Random) -> dict[str, bytes | int]:
    """``count`` uploads of CSV, JSON lines, PNG, zip and binary files from 0 bytes to 100 MB (multipart)."""
    objects: dict[str, bytes | int] = {"mixed/empty file.bin": b"", "mixed/big/100 MB+multipart.bin": 100 << 20}
    for i in range(count - 2):
        name = f"mixed/{i % 7}/{NAMES[i % len(NAMES)]} {i:04d}"
        kind = i % 5
        if kind == 0:
            objects[f"{name}.csv"] = b"id,value\n" + b"".join(
                b"%d,%d\n" % (n, n * i) for n in range(rng.randint(1, 300))
            )
        elif kind == 1:
            objects[f"{name}.jsonl"] = b"".join(b'{"n": %d}\n' % n for n in range(rng.randint(1, 100)))
        elif kind == 2:
            objects[f"{name}.png"] = png(rng.randint(1, 16), rng.randint(1, 16))
        elif kind == 3:
            objects[f"{name}.zip"] = zip_of({"a.txt": os.urandom(rng.randint(0, 2000)), "dir/b.bin": b"b" * i})
        else:
            objects[f"{name}.bin"] = os.urandom(rng.randint(0, 1 << 20))
    return objects


def by_key(jobs: list[JobRow]) -> dict[str, dict[str, JobRow]]:
    grouped: dict[str, dict[str, JobRow]] = {}
    for job in jobs:
        grouped.setdefault(str(job.source_key), {})[str(job.step)] = job
    return grouped


def test_a_thousand_mixed_uploads_are_processed_with_correct_results(system: System) -> None:
    objects = mixed_uploads(1000, random.Random(7))
    system.upload_many(objects)
    jobs = system.wait_until_settled(set(objects), within=300)

    grouped = by_key(jobs)
    for key, data in objects.items():
        steps = grouped[key]
        assert {(j.pipeline, j.step) for j in steps.values()} == expected_steps(key), key
        assert {j.status for j in steps.values()} == {JobStatus.COMPLETED}, (key, [j.errors for j in steps.values()])
        checksum, inspect = steps["checksum"], steps["inspect"]
        size = data if isinstance(data, int) else len(data)
        assert checksum.result["size"] == size
        if isinstance(data, bytes):
            assert checksum.result["sha256"] == hashlib.sha256(data).hexdigest()
        assert inspect.started_at is not None and checksum.finished_at is not None
        assert inspect.started_at >= checksum.finished_at, f"{key}: inspect ran before its parent finished"
    assert Counter(len(s) for s in grouped.values()) == Counter(len(expected_steps(k)) for k in objects)
    assert grouped["mixed/big/100 MB+multipart.bin"]["checksum"].result["etag_verified"] is False

    with system.http() as http:
        for key in random.Random(3).sample(sorted(objects), 30):
            story = http.get(f"/api/objects/{system.bucket}/{quote(key)}").json()
            assert len(story["events"]) == 1, key
            assert {(j["pipeline"], j["step"], j["status"]) for j in story["jobs"]} == {
                (p, s, "COMPLETED") for p, s in expected_steps(key)
            }


def test_bad_input_ends_in_a_clear_queryable_state(system: System) -> None:
    broken_csv = b"id,name\n1,ok\n2\n3,ok,extra\n4,fine\n"
    system.upload_many({"bad/notes.txt": b"no pipeline takes .txt", "bad/corrupt.zip": b"PK\x03\x04" + os.urandom(300),
                        "bad/broken rows.csv": broken_csv, "bad/fine.csv": b"a\n1\n"})  # fmt: skip
    _publish(system, [b"this is not json", b'{"Records": [{"eventName": "s3:ObjectCreated:Put"}]}'])
    jobs = by_key(system.wait_until_settled({"bad/corrupt.zip", "bad/broken rows.csv", "bad/fine.csv"}, within=120))

    extract = jobs["bad/corrupt.zip"]["extract"]
    assert extract.status is JobStatus.FAILED
    assert extract.errors[-1]["kind"] == "permanent" and "corrupt" in extract.errors[-1]["message"]
    assert jobs["bad/corrupt.zip"]["checksum"].status is JobStatus.COMPLETED, "its other jobs are undisturbed"
    profile = jobs["bad/broken rows.csv"]["profile"]
    assert profile.status is JobStatus.COMPLETED and profile.result["valid"] is False
    assert [e["line"] for e in profile.result["first_invalid"]] == [3, 4]
    assert jobs["bad/fine.csv"]["profile"].result["valid"] is True

    with system.http() as http:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            reasons = Counter(d["reason"] for d in http.get("/api/dlq").json())
            if reasons == {"unrouted": 1, "not_json": 1, "schema": 1}:
                break
            time.sleep(0.5)
        assert reasons == {"unrouted": 1, "not_json": 1, "schema": 1}


def test_poisoned_uploads_fail_their_own_jobs_and_every_later_upload_completes(system: System) -> None:
    """Four CSVs whose header holds NUL used to disable every worker that claimed them (issue: reliability)."""
    # The autoscaler retires its newest worker when idle: with only the two it keeps, the workers that meet
    # the poison are the ones still there to show they went on working.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with system.http() as http:
            if len(http.get("/api/workers").json()) == 2:
                break
        time.sleep(0.5)
    poisoned: dict[str, bytes | int] = {f"poison/bad {i}.csv": b"id,na\x00me\n1,\x002\n" for i in range(4)}
    system.upload_many(poisoned)
    first = by_key(system.wait_until_settled(set(poisoned), within=120))
    poison_workers = set()
    for key in poisoned:
        profile = first[key]["profile"]
        assert profile.status is JobStatus.FAILED and profile.attempts == 1, (key, profile.errors)
        (error,) = profile.errors
        assert error["kind"] == "permanent" and "cannot be stored in PostgreSQL" in error["message"], error
        assert first[key]["checksum"].status is JobStatus.COMPLETED, "the upload's other jobs are undisturbed"
        poison_workers.add(str(profile.worker_id))
    with system.http() as http:
        before = {w["workerId"]: w for w in http.get("/api/workers").json()}

    ordinary: dict[str, bytes | int] = {f"poison/after {i}.csv": b"id,name\n%d,ok\n" % i for i in range(40)}
    system.upload_many(ordinary)
    jobs = system.wait_until_settled(set(ordinary), within=120)
    later = [j for j in jobs if str(j.source_key) in ordinary]
    assert {j.status for j in later} == {JobStatus.COMPLETED}, Counter(j.status for j in later)
    assert not [e for j in jobs for e in j.errors if e["kind"] == "worker_lost"], "no worker was disabled"
    deadline, completed = time.monotonic() + 10, 0
    while completed == 0 and time.monotonic() < deadline:  # the counters arrive with the next heartbeat
        time.sleep(0.5)
        with system.http() as http:
            after = {w["workerId"]: w for w in http.get("/api/workers").json()}
        completed = sum(after[w]["jobsCompleted"] - before[w]["jobsCompleted"] for w in poison_workers)
    assert completed > 0, "the same worker processes completed later uploads"
    for worker in poison_workers:
        assert after[worker]["status"] == "ACTIVE", "the worker that met the poison is alive and working"


def test_conveyor_run_says_each_finished_pipeline_and_its_commands_work_as_printed(system: System) -> None:
    system.upload_many({"feed/hello.csv": b"id,name\n1,ok\n"})
    settled = system.wait_until_settled({"feed/hello.csv"}, within=60)
    (profile,) = [j for j in settled if j.source_key == "feed/hello.csv" and j.step == "profile"]
    wanted = {f"finished s3://{system.bucket}/feed/hello.csv  csv  completed (1 job)",
              f"finished s3://{system.bucket}/feed/hello.csv  fingerprint  completed (2 jobs)"}  # fmt: skip
    deadline, found = time.monotonic() + 20, set[str]()
    while found != wanted and time.monotonic() < deadline:  # the feed looks a couple of seconds back
        found = {w for w in wanted if any(line.startswith(w) for line in system.output.read_text().splitlines())}
        time.sleep(0.5)
    assert found == wanted, system.output.read_text()[-2000:]

    printed = system.output.read_text().split("and watch:", 1)[1].splitlines()
    commands = [
        line.strip() for line in printed if line.strip().startswith(("conveyor ", ".venv/bin/conveyor ", "curl "))
    ]
    assert len(commands) == 4, printed
    for command in commands:
        typed = command.split("  ")[0].replace("JOB_ID", str(profile.id))
        done = subprocess.run(["bash", "-c", typed], cwd=Path(__file__).parents[2], env=system.env,
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert done.returncode == 0, (typed, done.stderr)
        if "jobs show" in typed:
            assert "COMPLETED" in done.stdout and str(profile.id) in done.stdout


def _publish(system: System, values: list[bytes]) -> None:
    import asyncio

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=system.settings.kafka.bootstrap_servers)
        await producer.start()
        try:
            for value in values:
                await producer.send_and_wait(system.settings.kafka.events_topic, value)
        finally:
            await producer.stop()

    asyncio.run(send())


def test_crashes_lose_and_duplicate_nothing(system: System) -> None:
    """SIGKILL of workers and the ingestor, and crashes (SIGKILL) of Kafka, PostgreSQL (durable for this run),
    Redis and MinIO while 2,000 uploads flow: each crash is shown to have happened and to have hit work, and
    every upload ends with its jobs exactly once, all COMPLETED."""
    rng = random.Random(11)
    objects: dict[str, bytes | int] = {}
    for i in range(2000):
        if i % 2:
            objects[f"faults/{i:05d} a+b.csv"] = b"x,y\n" + b"%d,%d\n" % (i, i)
        else:
            objects[f"faults/{i:05d} ü.bin"] = os.urandom(rng.randint(0, 4096))
    crashed: dict[str, tuple[int, int]] = {}
    with durable_postgres():
        uploader = threading.Thread(target=lambda: system.upload_many(dict(objects), threads=2))
        uploader.start()
        faults: list[Callable[[], None]] = [
            lambda: _kill_a_busy_worker(system),
            lambda: _kill(system.pids("ingest")),
            lambda: crashed.update(kafka=_crash("kafka", 3)),
            lambda: _kill_a_busy_worker(system),
            lambda: crashed.update(postgres=_crash("postgres", 3)),
            lambda: crashed.update(redis=_crash("redis", 2)),
            lambda: crashed.update(minio=_crash("minio", 2)),
            lambda: _kill_a_busy_worker(system),
        ]
        for fault in faults:
            time.sleep(4)
            fault()
        uploader.join()
        jobs = system.wait_until_settled(set(objects), within=400)

    assert all(before != after for before, after in crashed.values()), f"each service crashed and came back: {crashed}"
    faulted = [j for j in jobs if str(j.source_key).startswith("faults/")]
    grouped = by_key(faulted)
    assert set(grouped) == set(objects), "an upload was lost"
    for key, steps in grouped.items():
        assert {(j.pipeline, j.step) for j in steps.values()} == expected_steps(key), key
    per_event = Counter((j.source_key, j.object_event_id, j.step) for j in faulted)
    assert set(per_event.values()) == {1}, "an event created a job twice"
    assert {j.status for j in faulted} == {JobStatus.COMPLETED}, Counter(j.status for j in faulted)
    rescued = [j for j in faulted if any(e["kind"] == "worker_lost" for e in j.errors)]
    assert rescued and all(j.attempts > 1 for j in rescued), "the killed workers held jobs, which ran again"


@contextmanager
def durable_postgres() -> Iterator[None]:
    """PostgreSQL with fsync and synchronous commit on (the stack's test default turns them off)."""
    durable = {**os.environ, "CONVEYOR_STACK__POSTGRES_FAST_UNSAFE": "false"}
    stack("down", "postgres")
    subprocess.run([sys.executable, "-m", "conveyor", "stack", "up", "postgres"], env=durable, check=True,
                   capture_output=True)  # fmt: skip
    try:
        yield
    finally:
        stack("down", "postgres")
        stack("up", "postgres")


def _stack_pid(service: str) -> int:
    return int(stack_status()[service]["pid"])


def _crash(service: str, down_seconds: float) -> tuple[int, int]:
    """SIGKILL the service's whole process group (a crash, not a stop), then `stack up` it; (old, new) pid."""
    before = _stack_pid(service)
    os.killpg(before, signal.SIGKILL)
    time.sleep(down_seconds)
    env = {**os.environ, "CONVEYOR_STACK__POSTGRES_FAST_UNSAFE": "false"} if service == "postgres" else None
    deadline = time.monotonic() + 60
    while True:  # a crashed PostgreSQL may need a moment before its shared memory is free again
        up = subprocess.run([sys.executable, "-m", "conveyor", "stack", "up", service], env=env, capture_output=True,
                            text=True, check=False)  # fmt: skip
        if up.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert up.returncode == 0, up.stderr
    return before, _stack_pid(service)


def _kill_a_busy_worker(system: System, within: float = 10) -> None:
    """SIGKILL a worker process while PostgreSQL shows it holding jobs (so the kill hits work)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            busy = asyncio.run(_pids_holding_jobs(system))
        except Exception:  # noqa: BLE001 - PostgreSQL may be coming back from the previous crash
            busy = set()
        if targets := busy & set(system.pids("worker")):
            _kill([min(targets)])
            return
        time.sleep(0.02)
    _kill(system.pids("worker")[-1:])  # nothing ran long enough to be seen: kill one anyway


async def _pids_holding_jobs(system: System) -> set[int]:
    conn = await connect(system.settings.postgres)
    try:
        running = await list_jobs(conn, JobFilter(status=JobStatus.RUNNING), limit=1000)
        workers = {w.id: w.pid for w in await list_workers(conn)}
    finally:
        await conn.close()
    return {pid for job in running if (pid := workers.get(job.worker_id)) is not None}  # type: ignore[arg-type]


def _kill(pids: list[int]) -> None:
    assert pids, "the process to kill should be running (the supervisor restarts it)"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)


ALL_VALUES = re.compile(r"\$(namespace|instance|job_type)\b")


def test_prometheus_has_data_for_every_dashboard_query(system: System, settings: Settings) -> None:
    with system.http() as http:  # the flow panel shows limited scopes: give the csv key a cap it never reaches
        assert http.put(f"/api/limits/key/{system.bucket}/", json={"maxRunning": 1000}).status_code == 200
    dashboard = json.loads((Path(__file__).parents[2] / "deploy/grafana/dashboards/conveyor.json").read_text())
    # Every variable at "All", as the dashboard opens; "All" also matches series with no such label (as here).
    exprs = [ALL_VALUES.sub(".*", t["expr"]) for panel in dashboard["panels"] for t in panel["targets"]]
    prometheus = f"http://127.0.0.1:{settings.stack.prometheus_port}"
    empty: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        empty = [
            e
            for e in exprs
            if not httpx.get(f"{prometheus}/api/v1/query", params={"query": e}).json()["data"]["result"]
        ]
        if not empty:
            return
        time.sleep(5)
    pytest.fail(f"dashboard queries without data: {empty}")
