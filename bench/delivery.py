"""bench/delivery: how fast uploads reach conveyor, what a Kafka outage costs, and what sweeps cost.

- PUT latency with Kafka up and SIGKILLed, in the default mode (the stack's MinIO: no queue dir,
  asynchronous events) beside the queued mode (a second MinIO with a queue dir and synchronous events).
- The queued mode's light-load latency through `conveyor run` (the default mode's is the e2e section).
- Kafka SIGKILLed for 60 s while 2,000 uploads arrive: every pipeline exactly once, and how long after
  Kafka is back the last one completed; the objects sweeps found missing beside MinIO's failed sends.
- A backfill of 10,000 existing objects, SIGKILLed half-way and started again; a second run.
- A sweep over 100,000 objects with nothing missing: its time and the PostgreSQL transactions it cost.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from minio import Minio

from bench.database import fresh_database
from bench.e2e import light_load
from conveyor import runtime
from conveyor.bootstrap import ensure_buckets, ensure_notifications
from conveyor.db.connection import connect
from conveyor.db.records import SweepKind, SweepRow
from conveyor.db.sql import parse
from conveyor.pipeline.storage.client import s3_client
from conveyor.pipeline.storage.listing import list_page
from conveyor.pipeline.storage.server_metrics import lost_notifications
from conveyor.settings import Settings
from tests import isolation
from tests.conftest import stack, stack_status
from tests.e2e.system import expected_steps, running_system
from tests.integration.conftest import put_bytes
from tests.integration.test_ingest import CSV_ONLY as CSV_RULES
from tests.support.queued_minio import queued_minio

STATS = parse((Path(__file__).parent / "stats.sql").read_text(), origin="bench/stats.sql")
ROWS = b"id,v\n1,2\n"
NO_RULES = """
[[pipeline]]
name = "never"
match = { suffixes = [".never"] }
  [[pipeline.jobs]]
  name = "n"
  type = "checksum"
"""


@dataclass
class PutLatency:
    up_ms: list[float] = field(default_factory=list)
    down_ms: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Outage:
    uploads: int
    kafka_down_seconds: float
    #: From Kafka answering again to the last upload's pipeline COMPLETED.
    settled_after_seconds: float
    pipelines_per_upload: Counter[int]
    found_missing: int
    minio_failed: float
    early_sweeps: int


@dataclass(frozen=True)
class Backfill:
    objects: int
    #: The same I/O without conveyor: listing every object and a HEAD of each, 8 at a time.
    bare_seconds: float
    killed_at_listed: int
    first_seconds: float
    resumed_seconds: float
    objects_started: int
    jobs_per_object: Counter[int]
    second_run_started: int
    second_run_seconds: float


@dataclass(frozen=True)
class Sweep:
    objects: int
    #: Listing the same objects page by page without conveyor (the sweep's own S3 requests).
    bare_list_seconds: float
    record_seconds: float
    sweep_seconds: float
    pages: int
    missing: int
    transactions: int
    list_requests: int


def _put_ms(client: Minio, bucket: str, key: str) -> float:
    started = time.perf_counter()
    asyncio.run(put_bytes(client, bucket, key, ROWS))
    return (time.perf_counter() - started) * 1000


def put_latency(settings: Settings) -> dict[str, PutLatency]:
    """20 PUTs per mode with Kafka up, then 10 per mode with Kafka SIGKILLed (restarted afterwards)."""
    bucket = isolation.bucket("put")
    s3 = settings.s3.model_copy(update={"buckets": [bucket]})
    default = s3_client(s3, retries=0, timeout_seconds=60)
    ensure_buckets(default, [bucket])
    ensure_notifications(default, s3)
    figures = {"default": PutLatency(), "queued": PutLatency()}
    try:
        with tempfile.TemporaryDirectory() as tmp, queued_minio(settings, Path(tmp)) as queued:
            clients = {"default": (default, bucket), "queued": (queued.client, queued.bucket)}
            for mode, (client, name) in clients.items():
                figures[mode].up_ms = [_put_ms(client, name, f"up {i}.bin") for i in range(20)]
            os.kill(stack_status()["kafka"]["pid"], signal.SIGKILL)
            try:
                time.sleep(1)
                for mode, (client, name) in clients.items():
                    figures[mode].down_ms = [_put_ms(client, name, f"down {i}.bin") for i in range(10)]
            finally:
                stack("up")
    finally:
        isolation.remove_buckets(default, [bucket])
    return figures


def queued_light_load(settings: Settings, count: int = 100) -> list[float]:
    """PUT -> first job RUNNING through `conveyor run`, with MinIO in the queued mode."""
    with tempfile.TemporaryDirectory() as tmp, queued_minio(settings, Path(tmp)) as queued:
        scoped = settings.model_copy(update={"s3": queued.s3})
        with running_system(scoped, Path(tmp), CONVEYOR_S3__ENDPOINT=queued.s3.endpoint) as system:
            time.sleep(3)
            to_running, _, _, _ = light_load(system, count)
    return to_running


def kafka_outage(settings: Settings, uploads: int = 2000, down_seconds: float = 60.0) -> Outage:
    """Uploads at a steady rate through `conveyor run` (default mode, default reconciler settings) while
    Kafka is SIGKILLed for ``down_seconds``."""
    with tempfile.TemporaryDirectory() as tmp, running_system(settings, Path(tmp)) as system:
        time.sleep(3)
        lost_before = lost_notifications(settings.s3, settings.reconcile.server_metrics_path)
        keys = [f"outage/{i:05d}.csv" for i in range(uploads)]
        interval = (down_seconds + 40) / uploads  # uploads span the outage, with 20 s either side
        back: dict[str, float] = {}
        outage = threading.Thread(target=_kill_kafka_for, args=(20.0, down_seconds, back))
        outage.start()
        with ThreadPoolExecutor(4) as pool:
            for key in keys:
                pool.submit(system.upload, key, ROWS)
                time.sleep(interval)
        outage.join()
        jobs = system.wait_until_settled(set(keys), within=down_seconds + 600)
        settled = max(j.finished_at.timestamp() for j in jobs if j.finished_at) - back["at"]
        lost = lost_notifications(settings.s3, settings.reconcile.server_metrics_path) - lost_before
        sweeps = asyncio.run(_sweeps(system.settings))
    per_key = Counter(j.source_key for j in jobs if j.source_key in set(keys))
    steps = len(expected_steps(keys[0]))
    early = [s for s in sweeps if s.reason.startswith("requested:")]
    return Outage(uploads, down_seconds, settled, Counter(count // steps for count in per_key.values()),
                  sum(s.objects_missing for s in sweeps), lost, len(early))  # fmt: skip


def _kill_kafka_for(after: float, seconds: float, back: dict[str, float]) -> None:
    time.sleep(after)
    os.kill(stack_status()["kafka"]["pid"], signal.SIGKILL)
    time.sleep(seconds)
    stack("up")
    back["at"] = time.time()


async def _sweeps(settings: Settings) -> list[SweepRow]:
    async with runtime.open_engine(settings) as engine:
        return await engine.sweeps.list(SweepKind.RECONCILE, limit=500)


def backfill(settings: Settings, objects: int = 10_000) -> Backfill:
    """`conveyor backfill` of ``objects`` existing CSVs, SIGKILLed half-way, started again, then once more."""
    with tempfile.TemporaryDirectory() as tmp:
        bucket, env, database = _bench_bucket(settings, Path(tmp), CSV_RULES, "backfill")
        client = s3_client(settings.s3)
        _upload_many(client, bucket, [f"{i:06d}.csv" for i in range(objects)])
        try:
            bare = bare_list_and_head(client, bucket)
            started = time.monotonic()
            first = _backfill(env, bucket)
            listed = _kill_when_listed(settings, database, first, objects // 2)
            first_seconds = time.monotonic() - started
            time.sleep(float(env["CONVEYOR_RECONCILE__LEASE_SECONDS"]) + 0.5)
            started = time.monotonic()
            _finished(_backfill(env, bucket))
            resumed_seconds = time.monotonic() - started
            done = asyncio.run(_latest_backfill(settings, database))
            jobs = asyncio.run(_jobs_per_object(settings, database))
            started = time.monotonic()
            _finished(_backfill(env, bucket))
            second_seconds = time.monotonic() - started
            second = asyncio.run(_latest_backfill(settings, database))
        finally:
            isolation.remove_buckets(client, [bucket])
            asyncio.run(_drop(settings, database))
    return Backfill(objects, bare, listed, first_seconds, resumed_seconds, done.objects_started, jobs,
                    second.objects_started, second_seconds)  # fmt: skip


def sweep(settings: Settings, objects: int = 100_000) -> Sweep:
    """A reconcile sweep over ``objects`` already recorded (by a backfill whose rules start nothing)."""
    with tempfile.TemporaryDirectory() as tmp:
        bucket, env, database = _bench_bucket(settings, Path(tmp), NO_RULES, "sweep")
        client = s3_client(settings.s3)
        _upload_many(client, bucket, [f"{i // 1000:03d}/{i:07d}.bin" for i in range(objects)], threads=16)
        try:
            bare = bare_list(client, bucket)
            started = time.monotonic()
            _finished(_backfill(env, bucket, CONVEYOR_RECONCILE__MAX_PAGES_PER_SECOND="1000"))
            record_seconds = time.monotonic() - started
            figures = asyncio.run(_measured_sweep(settings, database, bucket, Path(tmp) / "pipelines.toml"))
        finally:
            isolation.remove_buckets(client, [bucket])
            asyncio.run(_drop(settings, database))
    return Sweep(objects, bare, record_seconds, *figures)


def bare_list(client: Minio, bucket: str) -> float:
    """Seconds to list the bucket in pages of 1,000, as the sweep does, with nothing else."""
    started, cursor = time.monotonic(), None
    while True:
        page = list_page(client, bucket, prefix="", after=cursor, limit=1000, versions=False)
        if page.cursor is None:
            return time.monotonic() - started
        cursor = page.cursor


def bare_list_and_head(client: Minio, bucket: str) -> float:
    """Seconds to list the bucket and HEAD every object, 8 at a time: a backfill's S3 requests alone."""
    started, cursor, keys = time.monotonic(), None, []
    while True:
        page = list_page(client, bucket, prefix="", after=cursor, limit=1000, versions=False)
        keys += [o.key for o in page.objects]
        if page.cursor is None:
            break
        cursor = page.cursor
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: client.stat_object(bucket, key), keys))
    return time.monotonic() - started


async def _measured_sweep(
    settings: Settings, database: str, bucket: str, rules: Path
) -> tuple[float, int, int, int, int]:
    from prometheus_client import CollectorRegistry

    from conveyor.ingest.metrics import ReconcileMetrics
    from conveyor.ingest.reconciler import Reconciler
    from conveyor.ingest.routing import load_rules

    scoped = _scoped(settings, database, bucket)
    fast = {"include_existing": True, "max_pages_per_second": 1000.0, "slice_seconds": 3600.0, "grace_seconds": 0.0}
    scoped = scoped.model_copy(update={"reconcile": scoped.reconcile.model_copy(update=fast)})
    async with runtime.open_engine(scoped) as engine:
        metrics = ReconcileMetrics(CollectorRegistry())
        reconciler = Reconciler(engine, s3_client(scoped.s3), load_rules(rules), scoped.s3, scoped.ingest,
                                scoped.reconcile, metrics)  # fmt: skip
        (sweep_id,) = await reconciler.create_due()
        before = await _transactions(settings, database)
        started = time.monotonic()
        await reconciler.leadership.campaign()
        done = await reconciler.runner.run(sweep_id)
        seconds = time.monotonic() - started
        transactions = await _transactions(settings, database) - before
        await reconciler.leadership.resign()
    assert done is not None
    return (
        seconds,
        done.pages,
        done.objects_missing,
        transactions,
        int(metrics.list_requests.labels(bucket)._value.get()),
    )


async def _transactions(settings: Settings, database: str) -> int:
    conn = await connect(settings.postgres.model_copy(update={"database": database}))
    try:
        await conn.execute(STATS["stats_clear_snapshot"])
        count: int = await conn.fetchval(STATS["stats_commits"], database)
    finally:
        await conn.close()
    return count


def _bench_bucket(settings: Settings, home: Path, rules: str, kind: str) -> tuple[str, dict[str, str], str]:
    """A bucket with no notification rule, a fresh database, and the environment of `conveyor backfill`."""
    bucket, database = isolation.bucket(kind), f"conveyor_bench_{kind}"
    s3_client(settings.s3).make_bucket(bucket)
    asyncio.run(fresh_database(settings.postgres, database))
    (home / "pipelines.toml").write_text(rules)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(CONVEYOR_POSTGRES__DATABASE=database, CONVEYOR_S3__BUCKETS=f'["{bucket}"]',
               CONVEYOR_INGEST__PIPELINES_FILE=str(home / "pipelines.toml"), CONVEYOR_RECONCILE__LEASE_SECONDS="3",
               CONVEYOR_METRICS__ENABLED="false")  # fmt: skip
    return bucket, env, database


def _scoped(settings: Settings, database: str, bucket: str) -> Settings:
    postgres = settings.postgres.model_copy(update={"database": database})
    s3 = settings.s3.model_copy(update={"buckets": [bucket]})
    return settings.model_copy(update={"postgres": postgres, "s3": s3})


def _upload_many(client: Minio, bucket: str, keys: list[str], threads: int = 8) -> None:
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda key: asyncio.run(put_bytes(client, bucket, key, ROWS)), keys))


def _backfill(env: dict[str, str], bucket: str, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "conveyor", "backfill", f"s3://{bucket}"], env={**env, **extra},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip


def _finished(process: subprocess.Popen[str]) -> None:
    _, err = process.communicate(timeout=3600)
    if process.returncode != 0:
        raise RuntimeError(f"conveyor backfill failed: {err}")


def _kill_when_listed(settings: Settings, database: str, process: subprocess.Popen[str], listed: int) -> int:
    while True:
        sweep = asyncio.run(_latest_backfill(settings, database, missing_ok=True))
        if sweep is not None and sweep.objects_listed >= listed:
            process.send_signal(signal.SIGKILL)
            process.wait()
            killed = asyncio.run(_latest_backfill(settings, database))
            return killed.objects_listed
        if process.poll() is not None:
            raise RuntimeError("the backfill ended before it could be killed half-way")
        time.sleep(0.05)


async def _latest_backfill(settings: Settings, database: str, *, missing_ok: bool = False) -> SweepRow:
    async with runtime.open_engine(_scoped(settings, database, "-")) as engine:
        found = await engine.sweeps.list(SweepKind.BACKFILL, limit=1)
    if not found and missing_ok:
        return None  # type: ignore[return-value]
    return found[0]


async def _jobs_per_object(settings: Settings, database: str) -> Counter[int]:
    conn = await connect(settings.postgres.model_copy(update={"database": database}))
    try:
        rows = await conn.fetch(STATS["stats_jobs_per_object"])
    finally:
        await conn.close()
    return Counter({r["jobs"]: r["objects"] for r in rows})


async def _drop(settings: Settings, database: str) -> None:
    from tests.conftest import drop_database

    await drop_database(settings, database)
