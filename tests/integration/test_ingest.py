"""The ingestor against real Kafka, MinIO and PostgreSQL: every upload's jobs exactly once."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord
from minio import Minio
from prometheus_client import CollectorRegistry

from conveyor import runtime
from conveyor.db import events as event_queries
from conveyor.db import jobs as job_queries
from conveyor.db.connection import connect
from conveyor.db.records import EventJobs, JobFilter, JobStatus
from conveyor.db.settings import PostgresSettings
from conveyor.ingest import deadletters
from conveyor.ingest.consumer import BatchReport, Fetched, Ingestor
from conveyor.ingest.metrics import IngestMetrics
from conveyor.ingest.routing import RoutingRules, load_rules, parse_rules
from conveyor.pipeline.engine import Engine
from conveyor.settings import Settings
from tests.events import minio_message
from tests.integration.conftest import (
    Topics,
    committed_offsets,
    park_group_at_end,
    publish,
    put_bytes,
    scoped_settings,
    wait_until,
)

CSV_ONLY = """
[[pipeline]]
name = "csv"
match = { suffixes = [".csv"] }
  [[pipeline.jobs]]
  name = "profile"
  type = "csv.profile"
  [[pipeline.jobs]]
  name = "after"
  type = "checksum"
  depends_on = ["profile"]
"""


@asynccontextmanager
async def running_ingestor(settings: Settings, rules_text: str | None = None) -> AsyncIterator[Ingestor]:
    """An in-process ingest group member on ``settings``' topics and database."""
    rules = parse_rules(rules_text) if rules_text else load_rules(None)
    async with runtime.open_engine(settings) as engine:
        ingestor = Ingestor(engine, rules, settings.ingest, settings.kafka, IngestMetrics(CollectorRegistry()))
        await ingestor.start()
        try:
            yield ingestor
        finally:
            await ingestor.stop()


@asynccontextmanager
async def background_ingestor(settings: Settings, rules_text: str | None = None) -> AsyncIterator[Ingestor]:
    """:func:`running_ingestor` consuming in a task of its own (``run``), stopped and awaited at the end."""
    async with running_ingestor(settings, rules_text) as ingestor:
        stop = asyncio.Event()
        consuming = asyncio.create_task(ingestor.run(stop))
        try:
            yield ingestor
        finally:
            stop.set()
            await consuming


async def counts(database: PostgresSettings) -> list[EventJobs]:
    conn = await connect(database)
    try:
        return await event_queries.job_counts(conn)
    finally:
        await conn.close()


async def drain(ingestor: Ingestor, database: PostgresSettings, *, events: int, within: float = 60) -> None:
    async def enough() -> bool:
        await ingestor.run_once(timeout_ms=200)
        return len(await counts(database)) >= events

    await wait_until(enough, within=within, what=f"{events} events recorded")


async def test_uploads_through_minio_become_their_pipelines_jobs_with_the_real_name(
    settings: Settings, database: PostgresSettings, s3: Minio
) -> None:
    scoped = scoped_settings(settings, database, Topics(settings.kafka.events_topic, settings.kafka.dead_letter_topic))
    # The shared topic holds every earlier upload of this stack: read only what this test sends.
    await park_group_at_end(scoped, scoped.ingest.group_id)
    run = uuid.uuid4().hex[:8]
    uploads = {f"{run}/in box/a b+c 100%.csv": 3, f"{run}/lines ü.jsonl": 3, f"{run}/blob+.bin": 2}
    for key in uploads:
        await put_bytes(s3, settings.s3.buckets[0], key, b"id,x\n1,2\n")

    async with running_ingestor(scoped) as ingestor:

        async def ours() -> bool:
            await ingestor.run_once(timeout_ms=200)
            return {c.key for c in await counts(database)} >= set(uploads)

        await wait_until(ours, within=60, what="the uploads' events")

    by_key = {c.key: c for c in await counts(database) if c.key in uploads}
    assert {key: c.jobs for key, c in by_key.items()} == uploads
    conn = await connect(database)
    try:
        jobs = await job_queries.list_jobs(conn, JobFilter(source_key=f"{run}/in box/a b+c 100%.csv"), limit=10)
    finally:
        await conn.close()
    assert {(j.pipeline, j.step, j.job_type) for j in jobs} == {
        ("fingerprint", "checksum", "checksum"),
        ("fingerprint", "inspect", "inspect"),
        ("csv", "profile", "csv.profile"),
    }
    assert all(j.source_bucket == settings.s3.buckets[0] for j in jobs)


async def test_a_duplicate_event_creates_nothing_and_a_new_upload_of_the_key_creates_a_second_set(
    settings: Settings, database: PostgresSettings, topics: Topics
) -> None:
    scoped = scoped_settings(settings, database, topics)
    first = minio_message("uploads", "report.csv", sequencer="18EC532A88E3E431")
    later = f"{int('18EC532A88E3E431', 16) + 5_000_000_000:X}"  # the same key written again 5 s later
    reupload = minio_message("uploads", "report.csv", sequencer=later, etag="9e107d9d372bb6826bd81d3542a419d6")
    key = b"uploads/report.csv"
    await publish(scoped, topics.events, [(key, first), (key, first)])

    async with running_ingestor(scoped, CSV_ONLY) as ingestor:
        await drain(ingestor, database, events=1)
        await publish(scoped, topics.events, [(key, reupload)])
        await drain(ingestor, database, events=2)
        for _ in range(5):  # anything more would be a duplicate
            await ingestor.run_once(timeout_ms=100)

    recorded = await counts(database)
    assert sorted((c.sequencer, c.jobs) for c in recorded) == [("18EC532A88E3E431", 2), (later, 2)]
    assert ingestor.metrics.duplicates._value.get() == 1


#: A MinIO sequencer: nanoseconds since the epoch, in hex; a later one is a later write.
FIRST_WRITE = int("18EC532A88E3E431", 16)


async def test_write_lanes_keep_each_partitions_order_and_a_trickle_is_written_whole(
    settings: Settings, database: PostgresSettings, topics: Topics
) -> None:
    """Uploads read in one batch split across two lanes, the second lane held before it writes; then most of
    them removed, one event at a time, so each is written whole by the first lane. The first removal is of
    an upload the held lane carries: written before that upload, it would find nothing to cancel, and the
    upload, older than its removal, would start nothing."""
    scoped = scoped_settings(settings, database, topics, write_lanes=2, batch_max_records=16)
    names = [f"lanes/{n:03d}.csv" for n in range(16)]
    uploads: list[tuple[bytes | None, bytes]] = [
        (f"uploads/{name}".encode(), minio_message("uploads", name, sequencer=f"{FIRST_WRITE + n:X}"))
        for n, name in enumerate(names)
    ]
    await publish(scoped, topics.events, uploads)
    widths: list[int] = []
    held_keys: list[str] = []
    holding, release = asyncio.Event(), asyncio.Event()

    async with running_ingestor(scoped, CSV_ONLY) as ingestor:
        finish = ingestor._finish

        async def second_lane_held(fetched: Fetched) -> BatchReport:
            widths.append(fetched.width)
            if fetched.lane == 1 and not release.is_set():
                held_keys.extend(r.key.decode().split("/", 1)[1] for r in fetched.records if r.key)
                holding.set()
                await release.wait()
            return await finish(fetched)

        ingestor._finish = second_lane_held  # type: ignore[method-assign]
        stop = asyncio.Event()
        consuming = asyncio.create_task(ingestor.run(stop))
        await asyncio.wait_for(holding.wait(), timeout=30)
        removed = [held_keys[0], *[name for name in names[:12] if name != held_keys[0]]][:12]
        for n, name in enumerate(removed):
            removal = minio_message("uploads", name, sequencer=f"{FIRST_WRITE + 10**9:X}",
                                    event_name="s3:ObjectRemoved:Delete")  # fmt: skip
            await publish(scoped, topics.events, [(f"uploads/{name}".encode(), removal)])
            if n == 0:
                await asyncio.sleep(1.0)  # the first lane is free: time to overtake the held one, were it let
                release.set()

        async def all_recorded() -> bool:
            return len(await counts(database)) == len(uploads) + len(removed)

        await wait_until(all_recorded, within=60, what="every event recorded")
        stop.set()
        await consuming

    assert {1, 2} <= set(widths), "the uploads split across both lanes, each removal written whole"
    conn = await connect(database)
    try:
        jobs = await job_queries.list_jobs(conn, JobFilter(source_bucket="uploads"), limit=1000)
    finally:
        await conn.close()
    live = Counter(j.source_key for j in jobs if j.status in (JobStatus.BLOCKED, JobStatus.PENDING))
    assert live == {name: 2 for name in names if name not in removed}, "only the uploads never removed keep jobs"
    assert len(jobs) == 2 * len(names), "every upload started its pipeline before its removal cancelled it"
    committed = await committed_offsets(scoped)
    assert len(committed) == 4 and sum(committed.values()) == len(uploads) + len(removed), "offsets not committed"


async def test_a_lane_that_fails_stops_the_ingestor_loudly_and_commits_nothing_of_its_own(
    settings: Settings, database: PostgresSettings, topics: Topics
) -> None:
    scoped = scoped_settings(settings, database, topics, write_lanes=2, batch_max_records=8)
    await publish(scoped, topics.events, [(f"uploads/f{n}.csv".encode(), minio_message("uploads", f"f{n}.csv"))
                                          for n in range(40)])  # fmt: skip
    async with running_ingestor(scoped, CSV_ONLY) as ingestor:
        finish = ingestor._finish

        async def lane_one_breaks(fetched: Fetched) -> BatchReport:
            if fetched.lane == 1:
                raise RuntimeError("lane 1 broke")
            return await finish(fetched)

        ingestor._finish = lane_one_breaks  # type: ignore[method-assign]
        with pytest.raises(RuntimeError, match="lane 1 broke"):
            await asyncio.wait_for(ingestor.run(asyncio.Event()), timeout=60)
    committed = await committed_offsets(scoped)
    assert {tp.partition for tp in committed if committed[tp] > 0} <= {0, 2}, "lane 1's partitions moved"


#: Headers of one bad message: kept with its dead letter (bytes that are not UTF-8 as escapes).
SENT_HEADERS = [("trace-id", b"abc-123"), ("raw", b"\xff\x00\xc3\xa9")]


async def test_bad_messages_are_dead_lettered_with_reasons_and_replayed_after_a_fix(
    settings: Settings, database: PostgresSettings, topics: Topics
) -> None:
    scoped = scoped_settings(settings, database, topics, dead_letter_unrouted=True, max_message_bytes=4096)
    messages = [
        (b"uploads/good-1.csv", minio_message("uploads", "good-1.csv")),
        (None, b"this is not json"),  # sent alone below, with headers
        (None, b'{"Records": [{"eventName": "s3:ObjectCreated:Put"}]}'),
        (b"uploads/huge.csv", minio_message("uploads", "huge.csv") + b" " * 5000),
        (b"uploads/notes.txt", minio_message("uploads", "notes.txt")),
        (b"uploads/good-2.csv", minio_message("uploads", "good-2.csv")),
    ]
    await publish(scoped, topics.events, messages[:1])
    await publish(scoped, topics.events, messages[1:2], headers=SENT_HEADERS)
    await publish(scoped, topics.events, messages[2:])

    async with running_ingestor(scoped, CSV_ONLY) as ingestor:
        await drain(ingestor, database, events=2)

        async def all_dead_letters() -> bool:
            await ingestor.run_once(timeout_ms=100)
            conn = await connect(database)
            try:
                return len(await event_queries.list_dead_letters(conn)) == 4
            finally:
                await conn.close()

        await wait_until(all_dead_letters, within=30, what="four dead letters")

    assert sorted(c.key for c in await counts(database)) == ["good-1.csv", "good-2.csv"]
    dlq = await _read_topic(scoped, topics.dead_letters, 4)
    reasons = sorted(dict(r.headers)["conveyor-reason"].decode() for r in dlq)
    assert reasons == ["not_json", "schema", "too_large", "unrouted"]
    unrouted = next(r for r in dlq if dict(r.headers)["conveyor-reason"] == b"unrouted")
    assert unrouted.value == messages[4][1] and unrouted.key == messages[4][0]
    assert dict(unrouted.headers)["conveyor-source-topic"] == topics.events.encode()
    not_json = next(r for r in dlq if dict(r.headers)["conveyor-reason"] == b"not_json")
    assert list(not_json.headers[-2:]) == SENT_HEADERS, "the topic copy carries the headers it arrived with"

    conn = await connect(database)
    try:
        letters = {letter.reason: letter for letter in await event_queries.list_dead_letters(conn)}
    finally:
        await conn.close()
    fixed = load_rules(None)
    async with runtime.open_engine(scoped) as engine:
        kept = await engine.objects.dead_letter_headers([letter.id for letter in letters.values()])
        assert kept == {letters["not_json"].id: [("trace-id", "abc-123"), ("raw", "\\xff\\x00é")]}
        still_bad = await _replay(engine, letters["not_json"].id, fixed)
        replayed = await _replay(engine, letters["unrouted"].id, fixed)
    assert still_bad.letter.replayed_at is None and "not_json" in (still_bad.letter.last_replay_error or "")
    assert replayed.letter.replayed_at is not None and replayed.jobs_created == 2
    assert {c.key: c.jobs for c in await counts(database)}["notes.txt"] == 2


async def _replay(engine: Engine, letter_id: int, rules: RoutingRules) -> deadletters.ReplayOutcome:
    outcome = await deadletters.Replayer(engine, rules, max_bytes=4096, max_lineage_depth=3).replay(letter_id)
    assert outcome is not None
    return outcome


async def _read_topic(settings: Settings, topic: str, count: int) -> list[ConsumerRecord]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka.bootstrap_servers,
                                auto_offset_reset="earliest", enable_auto_commit=False)  # fmt: skip
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        for _ in range(50):
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records += batch
            if len(records) >= count:
                break
    finally:
        await consumer.stop()
    return records
