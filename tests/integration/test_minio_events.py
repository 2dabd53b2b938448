"""MinIO publishes each upload to Kafka under the raw name; what it drops while Kafka is down, a sweep finds."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from minio import Minio

from conveyor import runtime
from conveyor.bootstrap import ensure_notifications
from conveyor.db.records import SweepKind, SweepRow
from conveyor.db.settings import PostgresSettings
from conveyor.pipeline.storage.server_metrics import lost_notifications
from conveyor.settings import Settings
from tests import isolation
from tests.conftest import stack, stack_status
from tests.integration.conftest import (
    KafkaRecord,
    TopicReader,
    Topics,
    park_group_at_end,
    put_bytes,
    scoped_settings,
    wait_until,
)
from tests.integration.test_ingest import CSV_ONLY as CSV
from tests.integration.test_ingest import background_ingestor
from tests.integration.test_reconcile import jobs_by_key, reconcile_settings, reconciler, sweep_until_idle, upload
from tests.support.queued_minio import queued_minio

AWKWARD = "deep/nested prefix/Q3 report+final (v2) 100% ünïcødé — 東京.csv"


def _for_key(bucket: str, name: str) -> object:
    def done(records: list[KafkaRecord]) -> bool:
        return any(r.key == f"{bucket}/{name}".encode() for r in records)

    return done


async def test_upload_with_awkward_key_reaches_kafka(settings: Settings, s3: Minio, events: TopicReader) -> None:
    bucket = settings.s3.buckets[0]
    name = f"{uuid.uuid4().hex}/{AWKWARD}"
    await put_bytes(s3, bucket, name, b"a,b\n1,2\n")

    records = await events.read_until(_for_key(bucket, name))  # type: ignore[arg-type]

    ours = [r for r in records if r.key == f"{bucket}/{name}".encode()]
    assert len(ours) >= 1, f"no event for {name!r} among {len(records)} records"
    value = ours[0].json()
    assert value["EventName"] == "s3:ObjectCreated:Put"
    assert value["Key"] == f"{bucket}/{name}"
    record = value["Records"][0]
    assert record["s3"]["bucket"]["name"] == bucket
    escaped = record["s3"]["object"]["key"]
    assert escaped != name, "MinIO query-escapes the key inside the record"
    assert unquote_plus(escaped) == name
    assert record["s3"]["object"]["size"] == 8


async def test_kafka_killed_drops_minios_events_and_the_reconciler_starts_each_upload_once(
    settings: Settings, database: PostgresSettings, s3: Minio, events: TopicReader, tmp_path: Path
) -> None:
    """The default mode (no queue dir, asynchronous events) while Kafka is SIGKILLed: PUTs stay fast, MinIO
    drops their events (and counts them), and an early sweep finds exactly those uploads."""
    prefix = f"{uuid.uuid4().hex[:8]}/"
    scoped = scoped_settings(settings, database, Topics(settings.kafka.events_topic, settings.kafka.dead_letter_topic))
    scoped = reconcile_settings(scoped, prefix, grace_seconds=2.0, interval_seconds=3600.0)
    bucket = scoped.s3.buckets[0]
    await park_group_at_end(scoped, scoped.ingest.group_id)
    before, during = [f"{prefix}up {i}.csv" for i in range(10)], [f"{prefix}down {i}.csv" for i in range(20)]
    with queued_minio(settings, tmp_path) as queued:
        async with reconciler(scoped) as made, background_ingestor(scoped, CSV) as ingestor:
            await made.engine.sweeps.watch([bucket])
            await sweep_until_idle(made)  # the first sweep is behind us: only an early one can find the gap
            await upload(s3, bucket, before)
            await wait_until(lambda: _each_started(made, bucket, before), within=60, what="uploads via notifications")
            lost_before = lost_notifications(scoped.s3, scoped.reconcile.server_metrics_path)

            os.kill(stack_status()["kafka"]["pid"], signal.SIGKILL)
            try:
                put_seconds = [await _timed_put(s3, bucket, key) for key in during]
                await put_bytes(queued.client, queued.bucket, "queued.txt", b"kept on disk")
            finally:
                stack("up")
            assert max(put_seconds) < 1.0, f"a PUT waited for Kafka: {put_seconds}"

            running = asyncio.create_task(made.run(asyncio.Event()))
            try:
                await wait_until(lambda: _each_started(made, bucket, [*before, *during]), within=90,
                                 what="the dropped uploads started by a sweep")  # fmt: skip
            finally:
                running.cancel()
            early = [s for s in await _sweeps(scoped) if s.reason.startswith("requested:")]
            missing = sum(s.objects_missing for s in early)

            # MinIO counts a send as failed only when its producer gives up, which may come after the sweep;
            # a send still pending when Kafka returned is delivered late instead (one upload, two events).
            async def accounted() -> bool:
                lost = lost_notifications(scoped.s3, scoped.reconcile.server_metrics_path) - lost_before
                late: float = ingestor.metrics.same_upload._value.get()
                return lost + late == missing

            await wait_until(accounted, within=60, what="MinIO's failed sends and late events to add up")
            await _notified_again(made, s3, bucket, prefix)
        lost = lost_notifications(scoped.s3, scoped.reconcile.server_metrics_path) - lost_before
        assert early and 0 < missing <= len(during) and lost > 0, (lost, early)
        records = await events.read_until(_for_key(queued.bucket, "queued.txt"), within=60)  # type: ignore[arg-type]
        assert any(r.key == f"{queued.bucket}/queued.txt".encode() for r in records), "the queued mode lost it"


async def test_uploads_made_while_the_notification_rule_was_removed_are_all_started_by_sweeps(
    settings: Settings, database: PostgresSettings, s3: Minio
) -> None:
    bucket = isolation.bucket("norule")
    await asyncio.to_thread(s3.make_bucket, bucket)
    scoped = scoped_settings(settings, database, Topics(settings.kafka.events_topic, settings.kafka.dead_letter_topic))
    scoped = scoped.model_copy(update={"s3": scoped.s3.model_copy(update={"buckets": [bucket]})})
    scoped = reconcile_settings(scoped, "", prefixes=[], grace_seconds=3.0, interval_seconds=2.0, page_size=1000)
    await asyncio.to_thread(ensure_notifications, s3, scoped.s3)
    await park_group_at_end(scoped, scoped.ingest.group_id)
    unnotified, after = ([f"{part}/{i:03}.csv" for i in range(n)] for part, n in (("unnotified", 500), ("after", 5)))
    async with reconciler(scoped) as made, background_ingestor(scoped, CSV):
        await made.engine.sweeps.watch([bucket])
        # The rule works (a fresh rule may take a moment): probes until one arrives by its notification.
        lost_probes = await _notified_again(made, s3, bucket, "before/")
        await asyncio.to_thread(s3.delete_bucket_notification, bucket)
        await upload(s3, bucket, unnotified)
        await asyncio.to_thread(ensure_notifications, s3, scoped.s3)
        await upload(s3, bucket, after)
        running = asyncio.create_task(made.run(asyncio.Event()))
        try:
            everything = [*unnotified, *after]
            await wait_until(lambda: _each_started(made, bucket, everything), within=120, what="all 505 started")
        finally:
            running.cancel()
        sweeps = await made.engine.sweeps.list(SweepKind.RECONCILE, limit=100)
        origins = {key: [e["origin"] for e in await made.engine.objects.events_of(bucket, key)] for key in unnotified}
    assert all(found == ["sweep"] for found in origins.values()), "each unnotified upload: found once, by a sweep"
    # Besides them, only what MinIO itself dropped (a probe, or an upload soon after Kafka's last restart).
    assert sum(s.objects_missing for s in sweeps) >= len(unnotified) + lost_probes


async def _notified_again(made: Any, s3: Minio, bucket: str, prefix: str) -> int:
    """Notifications flow again once Kafka has its partitions back; until then MinIO drops them too.

    With no sweep running, only a notification starts a probe: one probe every 5 s until one is started.
    Returns how many probes did not arrive (a later sweep finds them).
    """
    deadline = time.monotonic() + 120
    for attempt in range(1000):
        probe = [f"{prefix}after {attempt}.csv"]
        await upload(s3, bucket, probe)
        for _ in range(25):
            if await _each_started(made, bucket, probe):
                return attempt
            await asyncio.sleep(0.2)
        assert time.monotonic() < deadline, "no notification reached conveyor within 2 minutes"
    raise AssertionError("unreachable")


async def _timed_put(s3: Minio, bucket: str, key: str) -> float:
    started = time.monotonic()
    await put_bytes(s3, bucket, key, b"id,x\n1,2\n")
    return time.monotonic() - started


async def _each_started(made: Any, bucket: str, keys: list[str]) -> bool:
    return await jobs_by_key(made.engine, bucket, keys) == dict.fromkeys(keys, 2)


async def _sweeps(scoped: Settings) -> list[SweepRow]:
    async with runtime.open_engine(scoped) as engine:
        return await engine.sweeps.list(SweepKind.RECONCILE, limit=50)
