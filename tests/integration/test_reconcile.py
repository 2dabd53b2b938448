"""Completeness: the reconciler's sweeps start what no notification brought, exactly once per upload.

Every test lists a prefix of its own in the suite's bucket on MinIO, with its own database; its
ingestor reads a topic of its own, so MinIO's notifications never reach it unless the test hands
them over: each test decides which events arrive, and in which order.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from minio import Minio
from minio.commonconfig import ENABLED
from minio.versioningconfig import VersioningConfig
from prometheus_client import CollectorRegistry

from conveyor import runtime
from conveyor.db.records import EventOrigin, JobFilter, SweepKind, SweepStatus
from conveyor.db.settings import PostgresSettings
from conveyor.ingest.metrics import ReconcileMetrics
from conveyor.ingest.reconciler import Reconciler
from conveyor.ingest.routing import parse_rules
from conveyor.ingest.sweep import SweepRunner
from conveyor.pipeline.engine import Engine
from conveyor.pipeline.storage.client import s3_client
from conveyor.settings import Settings
from tests import isolation
from tests.integration.conftest import KafkaRecord, TopicReader, Topics, publish, put_bytes, scoped_settings
from tests.integration.test_ingest import counts, drain, running_ingestor

CSV = """
[[pipeline]]
name = "csv"
match = { suffixes = [".csv"] }
  [[pipeline.jobs]]
  name = "profile"
  type = "csv.profile"
  [[pipeline.jobs]]
  name = "sum"
  type = "checksum"
  depends_on = ["profile"]
"""
ROWS = b"id,x\n1,2\n"


def reconcile_settings(settings: Settings, prefix: str, **overrides: Any) -> Settings:
    """``settings`` sweeping only ``bucket/prefix``, at once (no grace), fast."""
    values = {"prefixes": [f"{settings.s3.buckets[0]}/{prefix}"], "grace_seconds": 0.0, "interval_seconds": 1.0,
              "max_pages_per_second": 1000.0, "page_size": 10, "lease_seconds": 2.0, **overrides}  # fmt: skip
    return settings.model_copy(update={"reconcile": settings.reconcile.model_copy(update=values)})


@asynccontextmanager
async def reconciler(settings: Settings, rules: str = CSV) -> AsyncIterator[Reconciler]:
    async with runtime.open_engine(settings) as engine:
        made = Reconciler(engine, s3_client(settings.s3), parse_rules(rules), settings.s3, settings.ingest,
                          settings.reconcile, ReconcileMetrics(CollectorRegistry()))  # fmt: skip
        try:
            yield made
        finally:
            await made.leadership.resign()


async def sweep_until_idle(made: Reconciler) -> None:
    """Turns until a sweep of every target has completed since this call."""
    started = time.time()

    async def swept() -> bool:
        await made.run_once()
        done = await made.engine.sweeps.last_completed(made.buckets)
        return len(done) == len(made.targets) and all(d.started_at.timestamp() >= started for d in done.values())

    deadline = time.monotonic() + 60
    while not await swept():
        assert time.monotonic() < deadline, "no complete sweep within 60 s"
        await asyncio.sleep(0.2)


async def upload(s3: Minio, bucket: str, keys: Sequence[str], data: bytes = ROWS) -> None:
    await asyncio.gather(*(put_bytes(s3, bucket, key, data) for key in keys))


async def jobs_by_key(engine: Engine, bucket: str, keys: Sequence[str]) -> dict[str, int]:
    found = {}
    for key in keys:
        found[key] = len(await engine.list_jobs(JobFilter(source_bucket=bucket, source_key=key), limit=100))
    return found


async def notifications_of(events: TopicReader, bucket: str, keys: Sequence[str]) -> list[KafkaRecord]:
    """MinIO's own notifications of ``keys`` (from the shared topic), to hand to a test's ingestor."""
    wanted = {f"{bucket}/{k}".encode() for k in keys}

    def complete(records: list[KafkaRecord]) -> bool:
        return wanted <= {r.key for r in records}

    records = await events.read_until(complete, within=60)
    ours = [r for r in records if r.key in wanted]
    assert {r.key for r in ours} == wanted, "MinIO's notifications did not all arrive"
    return ours


async def test_a_sweep_alone_starts_every_upload_no_notification_brought(
    settings: Settings, database: PostgresSettings, topics: Topics, s3: Minio
) -> None:
    prefix = f"{uuid.uuid4().hex[:8]}/"
    scoped = reconcile_settings(scoped_settings(settings, database, topics), prefix)
    bucket = scoped.s3.buckets[0]
    keys = [f"{prefix}file {i:02}.csv" for i in range(25)]
    async with reconciler(scoped) as made:
        await made.engine.sweeps.watch([bucket])
        await upload(s3, bucket, keys)
        await sweep_until_idle(made)
        assert await jobs_by_key(made.engine, bucket, keys) == dict.fromkeys(keys, 2)
        (sweep,) = await made.engine.sweeps.list(SweepKind.RECONCILE, limit=5)
        assert (sweep.status, sweep.objects_listed, sweep.objects_missing, sweep.pages) == (
            SweepStatus.COMPLETED, 25, 25, 3)  # fmt: skip
        assert made.metrics.objects_missing.labels(bucket)._value.get() == 25
        events = await made.engine.objects.events_of(bucket, keys[0])
        assert [e["origin"] for e in events] == [EventOrigin.SWEEP.value]

        await asyncio.sleep(1.1)  # the interval: the next sweep finds everything recorded
        await sweep_until_idle(made)
        assert await jobs_by_key(made.engine, bucket, keys) == dict.fromkeys(keys, 2)
        latest = (await made.engine.sweeps.list(SweepKind.RECONCILE, limit=1))[0]
        assert (latest.objects_listed, latest.objects_missing, latest.jobs_created) == (25, 0, 0)
