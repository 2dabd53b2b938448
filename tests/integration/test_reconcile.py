"""Completeness: the reconciler's sweeps start what no notification brought, exactly once per upload.

Every test lists a prefix of its own in the suite's bucket on MinIO, with its own database; its
ingestor reads a topic of its own, so MinIO's notifications never reach it unless the test hands
them over: each test decides which events arrive, and in which order.
"""

from __future__ import annotations

import asyncio
import io
import json
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from minio import Minio
from minio.commonconfig import ENABLED
from minio.versioningconfig import VersioningConfig
from prometheus_client import CollectorRegistry

from conveyor import runtime
from conveyor.db.records import EventOrigin, JobFilter, JobRow, JobStatus, SweepKind, SweepStatus
from conveyor.db.settings import PostgresSettings
from conveyor.ingest import backfill
from conveyor.ingest.backfill import BackfillRequest
from conveyor.ingest.consumer import Ingestor
from conveyor.ingest.deadletters import Replayer
from conveyor.ingest.metrics import ReconcileMetrics
from conveyor.ingest.reconciler import Reconciler
from conveyor.ingest.routing import parse_rules
from conveyor.ingest.sweep import SweepRunner
from conveyor.pipeline.engine import Engine
from conveyor.pipeline.storage.client import s3_client
from conveyor.settings import Settings
from tests import isolation
from tests.integration.api_server import READ_ONLY, api_server
from tests.integration.conftest import (
    KafkaRecord,
    TopicReader,
    Topics,
    Workers,
    environment,
    publish,
    put_bytes,
    scoped_settings,
    wait_until,
)
from tests.integration.test_ingest import CSV_ONLY as CSV
from tests.integration.test_ingest import counts, drain, running_ingestor

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
        recent = [d for d in done.values() if d.started_at is not None and d.started_at.timestamp() >= started]
        return len(recent) == len(made.targets)

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


async def notifications_of(
    events: TopicReader, bucket: str, keys: Sequence[str], *, expected: int | None = None
) -> list[KafkaRecord]:
    """MinIO's own notifications of ``keys`` (from the shared topic; ``expected`` of them), to hand to a
    test's ingestor in the order MinIO sent them."""
    wanted = {f"{bucket}/{k}".encode() for k in keys}

    def complete(records: list[KafkaRecord]) -> bool:
        ours = [r for r in records if r.key in wanted]
        return wanted <= {r.key for r in ours} and (expected is None or len(ours) >= expected)

    records = await events.read_until(complete, within=60)
    ours = [r for r in records if r.key in wanted]
    assert {r.key for r in ours} == wanted, "MinIO's notifications did not all arrive"
    return ours


async def deliver_notifications(
    events: TopicReader, scoped: Settings, bucket: str, keys: Sequence[str], *, recorded: int
) -> Ingestor:
    """Hand MinIO's notifications of ``keys`` to an ingestor of the test, until ``recorded`` events are."""
    notified = await notifications_of(events, bucket, keys)
    await publish(scoped, scoped.kafka.events_topic, [(r.key, r.value) for r in notified])
    async with running_ingestor(scoped, CSV) as ingestor:
        await drain(ingestor, scoped.postgres, events=recorded)
    return ingestor


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


async def test_a_late_notification_after_the_sweep_starts_nothing(
    settings: Settings, database: PostgresSettings, topics: Topics, s3: Minio, events: TopicReader
) -> None:
    prefix = f"{uuid.uuid4().hex[:8]}/"
    scoped = reconcile_settings(scoped_settings(settings, database, topics), prefix)
    bucket, keys = scoped.s3.buckets[0], [f"{prefix}late {i}.csv" for i in range(3)]
    async with reconciler(scoped) as made:
        await made.engine.sweeps.watch([bucket])
        await upload(s3, bucket, keys)
        await sweep_until_idle(made)
        ingestor = await deliver_notifications(events, scoped, bucket, keys, recorded=6)
        assert await jobs_by_key(made.engine, bucket, keys) == dict.fromkeys(keys, 2), "started once, by the sweep"
        assert ingestor.metrics.same_upload._value.get() == 3
        origins = [e["origin"] for e in await made.engine.objects.events_of(bucket, keys[0])]
        assert origins == [EventOrigin.SWEEP.value, EventOrigin.NOTIFICATION.value], "both events are kept"


async def test_a_sweep_after_the_notification_finds_nothing_missing(
    settings: Settings, database: PostgresSettings, topics: Topics, s3: Minio, events: TopicReader
) -> None:
    prefix = f"{uuid.uuid4().hex[:8]}/"
    scoped = reconcile_settings(scoped_settings(settings, database, topics), prefix)
    bucket, keys = scoped.s3.buckets[0], [f"{prefix}early {i}.csv" for i in range(3)]
    async with reconciler(scoped) as made:
        await made.engine.sweeps.watch([bucket])
        await upload(s3, bucket, keys)
        await deliver_notifications(events, scoped, bucket, keys, recorded=3)
        await sweep_until_idle(made)
        assert await jobs_by_key(made.engine, bucket, keys) == dict.fromkeys(keys, 2)
        (sweep,) = await made.engine.sweeps.list(SweepKind.RECONCILE, limit=5)
        assert (sweep.objects_listed, sweep.objects_missing, sweep.jobs_created) == (3, 0, 0)
        assert len(await counts(database)) == 3, "the sweep recorded no event"


async def test_a_new_write_of_a_key_is_a_new_upload_and_each_version_is_processed_once(
    settings: Settings, database: PostgresSettings, topics: Topics, s3: Minio
) -> None:
    prefix = f"{uuid.uuid4().hex[:8]}/"
    scoped = reconcile_settings(scoped_settings(settings, database, topics), prefix)
    bucket, key = scoped.s3.buckets[0], f"{prefix}again.csv"
    async with reconciler(scoped) as made:
        await made.engine.sweeps.watch([bucket])
        await upload(s3, bucket, [key])
        await sweep_until_idle(made)
        await upload(s3, bucket, [key], b"id,x\n1,3\n")  # new content
        await asyncio.sleep(1.1)
        await sweep_until_idle(made)
        assert await jobs_by_key(made.engine, bucket, [key]) == {key: 4}
        await asyncio.sleep(scoped.ingest.same_upload_tolerance_seconds)
        await upload(s3, bucket, [key], b"id,x\n1,3\n")  # the same bytes, written again later: a new mtime
        await sweep_until_idle(made)
        assert await jobs_by_key(made.engine, bucket, [key]) == {key: 6}
        await asyncio.sleep(1.1)
        await sweep_until_idle(made)
        assert await jobs_by_key(made.engine, bucket, [key]) == {key: 6}, "an unchanged object starts nothing"


async def test_each_version_of_a_versioned_bucket_is_processed_once(
    settings: Settings, database: PostgresSettings, topics: Topics, s3: Minio
) -> None:
    bucket = isolation.bucket("versioned")
    await asyncio.to_thread(s3.make_bucket, bucket)
    await asyncio.to_thread(s3.set_bucket_versioning, bucket, VersioningConfig(ENABLED))
    scoped = scoped_settings(settings, database, topics)
    scoped = scoped.model_copy(update={"s3": scoped.s3.model_copy(update={"buckets": [bucket]})})
    scoped = reconcile_settings(scoped, "", prefixes=[])
    async with reconciler(scoped) as made:
        await made.engine.sweeps.watch([bucket])
        for content in (b"id\n1\n", b"id\n2\n", b"id\n3\n"):
            await upload(s3, bucket, ["v.csv"], content)
        await upload(s3, bucket, ["other.csv"])
        await sweep_until_idle(made)
        jobs = await made.engine.list_jobs(JobFilter(source_bucket=bucket, source_key="v.csv"), limit=100)
        versions = {o.version_id for o in s3.list_objects(bucket, prefix="v.csv", include_version=True)}
        assert len(jobs) == 6 and {j.source_version for j in jobs} == versions and len(versions) == 3
        await asyncio.sleep(1.1)
        await sweep_until_idle(made)
        assert len(await made.engine.list_jobs(JobFilter(source_bucket=bucket), limit=100)) == 8


async def test_a_sweep_whose_runner_died_resumes_from_its_cursor_and_starts_each_object_once(
    settings: Settings, database: PostgresSettings, topics: Topics, s3: Minio
) -> None:
    prefix = f"{uuid.uuid4().hex[:8]}/"
    scoped = reconcile_settings(scoped_settings(settings, database, topics), prefix)
    bucket, keys = scoped.s3.buckets[0], [f"{prefix}{i:03}.csv" for i in range(45)]
    async with reconciler(scoped) as made:
        await made.engine.sweeps.watch([bucket])
        await upload(s3, bucket, keys)
        (sweep_id,) = await made.create_due()
        first = await made.runner.run(sweep_id, until=time.monotonic())  # one page, then "dies" holding it
        assert first is not None and (first.status, first.objects_listed) == (SweepStatus.RUNNING, 10)
        other = SweepRunner(made.engine, s3, parse_rules(CSV), scoped.ingest, scoped.reconcile,
                            ReconcileMetrics(CollectorRegistry()), owner="another process")  # fmt: skip
        assert await other.run(sweep_id) is None, "the lease still holds it"
        await asyncio.sleep(scoped.reconcile.lease_seconds + 0.2)
        done = await other.run(sweep_id)
        assert done is not None and (done.status, done.objects_listed, done.objects_missing) == (
            SweepStatus.COMPLETED, 45, 45)  # fmt: skip
        assert await jobs_by_key(made.engine, bucket, keys) == dict.fromkeys(keys, 2)


TWO_PIPELINES = (
    CSV
    + """
[[pipeline]]
name = "fingerprint"
match = { suffixes = [".csv"] }
  [[pipeline.jobs]]
  name = "inspect"
  type = "inspect"
"""
)


def backfill_command(scoped: Settings, tmp_path: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    rules = tmp_path / "pipelines.toml"
    rules.write_text(TWO_PIPELINES)
    variables = {**environment(scoped), "CONVEYOR_INGEST__PIPELINES_FILE": str(rules), **env}
    return subprocess.Popen([sys.executable, "-m", "conveyor", "backfill", *args], env=variables,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def finished(process: subprocess.Popen[str]) -> str:
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return err


async def pipelines_per_object(engine: Engine, bucket: str, keys: Sequence[str]) -> Counter[tuple[str, str]]:
    """(key, pipeline) -> jobs started for it: each pipeline of the test rules has 1 or 2 jobs."""
    found: Counter[tuple[str, str]] = Counter()
    for key in keys:
        for job in await engine.list_jobs(JobFilter(source_bucket=bucket, source_key=key), limit=100):
            found[(key, job.pipeline or "")] += 1
    return found


async def test_a_backfill_killed_half_way_resumes_and_a_second_one_creates_nothing(
    settings: Settings, database: PostgresSettings, topics: Topics, s3: Minio, tmp_path: Path
) -> None:
    prefix = f"{uuid.uuid4().hex[:8]}/"
    scoped = scoped_settings(settings, database, topics)
    bucket, keys = scoped.s3.buckets[0], [f"{prefix}old {i:04}.csv" for i in range(600)]
    await upload(s3, bucket, keys)  # before anything watched the bucket: only a backfill starts them
    url, slow = f"s3://{bucket}/{prefix}", {"CONVEYOR_RECONCILE__PAGE_SIZE": "25",
                                            "CONVEYOR_RECONCILE__MAX_PAGES_PER_SECOND": "10",
                                            "CONVEYOR_RECONCILE__LEASE_SECONDS": "2"}  # fmt: skip
    async with runtime.open_engine(scoped) as engine:
        first = backfill_command(scoped, tmp_path, url, "--pipeline", "csv", **slow)

        async def half_way() -> bool:
            backfills = await engine.sweeps.list(SweepKind.BACKFILL, limit=1)
            return bool(backfills) and backfills[0].objects_listed >= 300

        try:
            await wait_until(half_way, within=60, what="the backfill half-way")
        except AssertionError:
            first.kill()
            raise AssertionError(first.communicate()[1]) from None
        first.send_signal(signal.SIGKILL)
        first.wait()
        (killed,) = await engine.sweeps.list(SweepKind.BACKFILL, limit=1)
        assert killed.status is SweepStatus.RUNNING and 300 <= killed.objects_listed < 600, "killed mid-way"

        assert "resuming" in finished(backfill_command(scoped, tmp_path, url, "--pipeline", "csv"))
        (done,) = await engine.sweeps.list(SweepKind.BACKFILL, limit=1)
        assert (done.id, done.status, done.objects_started) == (killed.id, SweepStatus.COMPLETED, 600)
        assert await pipelines_per_object(engine, bucket, keys) == {(k, "csv"): 2 for k in keys}

        again = finished(backfill_command(scoped, tmp_path, url, "--pipeline", "csv"))
        assert "started 0 objects, 0 jobs" in again, again
        dry = finished(backfill_command(scoped, tmp_path, url, "--dry-run"))
        assert "would start 600 objects, 600 jobs" in dry, dry
        finished(backfill_command(scoped, tmp_path, url))  # every pipeline: only "fingerprint" is left to run
        expected = {(k, "csv"): 2 for k in keys} | {(k, "fingerprint"): 1 for k in keys}
        assert await pipelines_per_object(engine, bucket, keys) == expected
        assert "started 0 objects, 0 jobs" in finished(backfill_command(scoped, tmp_path, url))


async def test_a_backfill_refuses_an_unknown_bucket_or_pipeline(
    settings: Settings, database: PostgresSettings, topics: Topics, tmp_path: Path
) -> None:
    scoped = scoped_settings(settings, database, topics)
    unknown_bucket = backfill_command(scoped, tmp_path, "s3://no-such-bucket/x")
    unknown_pipeline = backfill_command(scoped, tmp_path, f"s3://{scoped.s3.buckets[0]}", "--pipeline", "nope")
    for process, says in ((unknown_bucket, "bucket 'no-such-bucket' is not one of"),
                          (unknown_pipeline, "no pipeline is named 'nope'")):  # fmt: skip
        _, err = process.communicate(timeout=60)
        assert process.returncode == 2 and says in err, err


async def test_the_api_queues_a_backfill_the_reconciler_runs_and_reports_its_progress(
    settings: Settings, database: PostgresSettings, topics: Topics, s3: Minio
) -> None:
    prefix = f"{uuid.uuid4().hex[:8]}/"
    # The reconciler's own sweeps look elsewhere: objects written within a second of the watch's start are
    # the watch's, and this test is about the backfill alone.
    scoped = reconcile_settings(scoped_settings(settings, database, topics), f"{prefix}elsewhere/")
    bucket, keys = scoped.s3.buckets[0], [f"{prefix}api {i}.csv" for i in range(5)]
    await upload(s3, bucket, keys)
    buckets = json.dumps(scoped.s3.buckets)
    with (
        api_server(database.database, CONVEYOR_S3__BUCKETS=buckets) as api,
        api.client() as client,
        api.client(READ_ONLY) as reader,
    ):
        wanted = {"bucket": bucket, "prefix": prefix, "since": "2020-01-01T00:00:00"}
        assert reader.post("/api/backfills", json=wanted).status_code == 403
        for bad, field in (({"bucket": "nope"}, "bucket"), ({"bucket": bucket, "pipeline": "nope"}, "pipeline"),
                           ({"bucket": bucket, "since": "yesterday"}, "since")):  # fmt: skip
            refused = client.post("/api/backfills", json=bad)
            assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", field], refused.text
        queued = client.post("/api/backfills", json=wanted)
        assert queued.status_code == 202 and queued.json()["status"] == "PENDING", queued.text
        assert client.post("/api/backfills", json=wanted).json()["id"] == queued.json()["id"], "the same one"
        async with reconciler(scoped) as made:
            await made.run_once()  # the leader runs the queued backfill in its slice
        progress = client.get(f"/api/backfills/{queued.json()['id']}").json()
        assert (progress["status"], progress["objectsTotal"], progress["objectsListed"], progress["objectsStarted"],
                progress["jobsCreated"]) == ("COMPLETED", 5, 5, 5, 10)  # fmt: skip
        assert progress["ratePerSecond"] > 0 and progress["etaSeconds"] is None
        assert [b["id"] for b in client.get("/api/backfills").json()] == [queued.json()["id"]]
        assert client.get("/api/backfills/999").status_code == 404
        story = client.get(f"/api/objects/{bucket}/{keys[0]}").json()
        assert [e["origin"] for e in story["events"]] == ["backfill"] and len(story["jobs"]) == 2


def deleted_jobs_say_so(jobs: Sequence[JobRow]) -> bool:
    return all(j.status is JobStatus.CANCELLED and j.errors[-1]["kind"] == "object_removed"
               and "object removed" in j.errors[-1]["message"] for j in jobs)  # fmt: skip


async def test_deleting_uploads_before_they_are_processed_cancels_their_jobs_and_fails_nothing(
    settings: Settings, database: PostgresSettings, topics: Topics, s3: Minio, events: TopicReader,
    workers: Workers,
) -> None:  # fmt: skip
    prefix = f"{uuid.uuid4().hex[:8]}/"
    scoped = scoped_settings(settings, database, topics)
    bucket, keys = scoped.s3.buckets[0], [f"{prefix}{i:02}.csv" for i in range(60)]
    deleted, kept = keys[::5], [k for i, k in enumerate(keys) if i % 5]
    await upload(s3, bucket, keys)
    await asyncio.gather(*(asyncio.to_thread(s3.remove_object, bucket, key) for key in deleted))
    notified = await notifications_of(events, bucket, keys, expected=len(keys) + len(deleted))
    assert sum(r.json()["EventName"] == "s3:ObjectRemoved:Delete" for r in notified) == len(deleted)
    removals = [r for r in notified if r.json()["EventName"].startswith("s3:ObjectRemoved:")]
    creations = [r for r in notified if r not in removals]
    async with running_ingestor(scoped, CSV) as ingestor, runtime.open_engine(scoped) as engine:
        # Their jobs are waiting when the removals arrive (in one batch with them, they would start none).
        await publish(scoped, topics.events, [(r.key, r.value) for r in creations])
        await drain(ingestor, database, events=len(creations))
        await publish(scoped, topics.events, [(r.key, r.value) for r in removals])
        await drain(ingestor, database, events=len(notified))
        assert ingestor.metrics.removals._value.get() == len(deleted)
        assert ingestor.metrics.jobs_cancelled_by_removal._value.get() == 2 * len(deleted)
        for key in deleted:
            jobs = await engine.list_jobs(JobFilter(source_bucket=bucket, source_key=key), limit=10)
            assert len(jobs) == 2 and deleted_jobs_say_so(jobs), f"{key}: {jobs}"

        workers.start("--job-types", "csv.profile,checksum", "--concurrency", "8")

        async def all_final() -> bool:
            jobs = await engine.list_jobs(JobFilter(source_bucket=bucket), limit=1000)
            return len(jobs) >= 120 and all(j.status.is_final for j in jobs if j.source_key in keys)

        await wait_until(all_final, within=120, what="every job final")
        jobs = [j for j in await engine.list_jobs(JobFilter(source_bucket=bucket), limit=1000) if j.source_key in keys]
        assert not [j for j in jobs if j.status is JobStatus.FAILED], "a deleted file failed a job"
        assert {j.source_key for j in jobs if j.status is JobStatus.COMPLETED} == set(kept)


async def test_a_handler_that_finds_its_object_gone_cancels_the_job_with_the_reason(
    settings: Settings, database: PostgresSettings, topics: Topics, s3: Minio, workers: Workers
) -> None:
    prefix = f"{uuid.uuid4().hex[:8]}/"
    scoped = reconcile_settings(scoped_settings(settings, database, topics), prefix)
    bucket, keys = scoped.s3.buckets[0], [f"{prefix}gone {i}.csv" for i in range(5)]
    async with reconciler(scoped) as made:
        await made.engine.sweeps.watch([bucket])
        await upload(s3, bucket, keys)
        await sweep_until_idle(made)  # their jobs exist; no removal event will ever reach this ingest
        await asyncio.gather(*(asyncio.to_thread(s3.remove_object, bucket, key) for key in keys))
        workers.start("--job-types", "csv.profile,checksum")

        async def all_final() -> bool:
            jobs = await made.engine.list_jobs(JobFilter(source_bucket=bucket), limit=100)
            return all(j.status.is_final for j in jobs if j.source_key in keys)

        await wait_until(all_final, within=60, what="the jobs of the vanished objects final")
        jobs = [
            j for j in await made.engine.list_jobs(JobFilter(source_bucket=bucket), limit=100) if j.source_key in keys
        ]
        assert len(jobs) == 10 and deleted_jobs_say_so(jobs), jobs
        assert all(j.attempts == 1 for j in jobs if j.job_type == "csv.profile"), "never retried"


async def test_a_sweep_that_fails_says_why_and_is_not_retried_at_every_turn(
    settings: Settings, database: PostgresSettings, topics: Topics
) -> None:
    scoped = reconcile_settings(scoped_settings(settings, database, topics), "", prefixes=["no-such-bucket/"])
    async with reconciler(scoped) as made:
        for _ in range(3):
            await made.run_once()
        (failed,) = await made.engine.sweeps.list(SweepKind.RECONCILE)
        assert failed.status is SweepStatus.FAILED and "NoSuchBucket" in (failed.error or ""), failed
        assert made.metrics.sweeps.labels("reconcile", "failed")._value.get() == 1


async def test_a_swept_object_that_cannot_become_jobs_is_dead_lettered_once_and_replays(
    settings: Settings, database: PostgresSettings, topics: Topics, s3: Minio
) -> None:
    prefix = f"{uuid.uuid4().hex[:8]}/"
    scoped = reconcile_settings(scoped_settings(settings, database, topics), prefix)
    bucket, key = scoped.s3.buckets[0], f"{prefix}runaway.csv"
    async with reconciler(scoped) as made:
        await made.engine.sweeps.watch([bucket])
        await asyncio.to_thread(s3.put_object, bucket, key, io.BytesIO(ROWS), len(ROWS),
                                metadata={"conveyor-lineage-depth": "9"})  # fmt: skip
        for _ in range(2):
            await sweep_until_idle(made)
            await asyncio.sleep(1.1)
        (letter,) = await made.engine.objects.dead_letters()
        assert (letter.reason, letter.source_topic) == ("lineage_depth_exceeded", "conveyor.sweep")
        assert made.metrics.objects_missing.labels(bucket)._value.get() == 1, "found once, not at every sweep"
        lenient = Replayer(made.engine, parse_rules(CSV), scoped.ingest.max_message_bytes, max_lineage_depth=10)
        outcome = await lenient.replay(letter.id)
        assert outcome is not None and outcome.jobs_created == 2
        origins = [e["origin"] for e in await made.engine.objects.events_of(bucket, key)]
        assert origins == [EventOrigin.REPLAY.value]


async def test_a_backfill_run_in_slices_counts_and_lists_across_them(
    settings: Settings, database: PostgresSettings, topics: Topics, s3: Minio
) -> None:
    prefix = f"{uuid.uuid4().hex[:8]}/"
    scoped = reconcile_settings(scoped_settings(settings, database, topics), prefix)
    bucket, keys = scoped.s3.buckets[0], [f"{prefix}{i:03}.csv" for i in range(35)]
    await upload(s3, bucket, keys)
    async with reconciler(scoped) as made:
        sweep = await backfill.start(made.engine, BackfillRequest(bucket=bucket, prefix=prefix))
        seen = []
        while not sweep.status.is_final:
            after = await made.runner.run(sweep.id, until=time.monotonic())  # one page per slice
            assert after is not None
            sweep = after
            seen.append((sweep.objects_counted, sweep.objects_total, sweep.objects_listed))
        assert seen[:4] == [(10, None, 0), (20, None, 0), (30, None, 0), (35, 35, 10)], seen
        assert (sweep.status, sweep.objects_listed, sweep.objects_started) == (SweepStatus.COMPLETED, 35, 35)
        assert await jobs_by_key(made.engine, bucket, keys) == dict.fromkeys(keys, 2)
