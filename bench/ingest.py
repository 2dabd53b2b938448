"""bench/ingest: events/s from a pre-filled topic to committed jobs, beside the raw aiokafka read rate.

The events are real MinIO notifications: one object is uploaded, its event read back from Kafka, and
copies with distinct keys and sequencers fill a fresh topic. Each event starts a 2-job pipeline.

The bare insert and ingest take ``ROUNDS`` turns, each on a fresh database (ingest as a new consumer group
reading the whole topic), and the report takes each one's median: single runs of either varied by a tenth.
"""

from __future__ import annotations

import asyncio
import io
import json
import statistics
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote_plus

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import CollectorRegistry

from bench.database import fresh_database
from bench.worker import SQL
from conveyor import runtime
from conveyor.db import connection
from conveyor.ingest.consumer import Ingestor
from conveyor.ingest.events import UploadEvent, parse_message
from conveyor.ingest.metrics import IngestMetrics
from conveyor.ingest.routing import parse_rules
from conveyor.pipeline.engine.ids import uuid7
from conveyor.pipeline.storage.client import s3_client
from conveyor.settings import Settings

TWO_JOBS = """
[[pipeline]]
name = "fingerprint"
  [[pipeline.jobs]]
  name = "checksum"
  type = "checksum"
  [[pipeline.jobs]]
  name = "inspect"
  type = "inspect"
  depends_on = ["checksum"]
"""
BENCH_DB = "conveyor_bench_ingest"
EVENTS = 50_000
LIGHT_EVENTS = 200
ROUNDS = 3


@dataclass(frozen=True)
class IngestFigures:
    events: int
    partitions: int
    batch: int
    raw_seconds: float
    #: Each round's seconds, the bare insert's and ingest's taken in turn.
    bare_seconds: list[float]
    ingest_seconds: list[float]
    latencies_ms: list[float]

    @property
    def raw_rate(self) -> float:
        return self.events / self.raw_seconds

    @property
    def bare_rates(self) -> list[float]:
        return [self.events / seconds for seconds in self.bare_seconds]

    @property
    def ingest_rates(self) -> list[float]:
        return [self.events / seconds for seconds in self.ingest_seconds]

    @property
    def bare_rate(self) -> float:
        return statistics.median(self.bare_rates)

    @property
    def ingest_rate(self) -> float:
        return statistics.median(self.ingest_rates)

    def percentile(self, p: float) -> float:
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[int(p) - 1]


async def real_minio_event(settings: Settings) -> dict[str, object]:
    """Upload one object and return the notification MinIO published for it."""
    consumer = AIOKafkaConsumer(settings.kafka.events_topic, bootstrap_servers=settings.kafka.bootstrap_servers,
                                auto_offset_reset="latest", enable_auto_commit=False)  # fmt: skip
    await consumer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        for tp in consumer.assignment():
            await consumer.position(tp)
        key = f"bench/{uuid.uuid4().hex}.bin"
        client = s3_client(settings.s3)
        await asyncio.to_thread(client.put_object, settings.s3.buckets[0], key, io.BytesIO(b"x" * 1024), 1024)
        for _ in range(100):
            for messages in (await consumer.getmany(timeout_ms=200)).values():
                for message in messages:
                    if message.key == f"{settings.s3.buckets[0]}/{key}".encode():
                        return dict(json.loads(message.value))
    finally:
        await consumer.stop()
    raise RuntimeError("MinIO's event for the bench object never arrived")


def variant(template: dict[str, object], n: int, run: str) -> tuple[bytes, bytes]:
    """The template event for another object: its own key and sequencer."""
    event = json.loads(json.dumps(template))
    name = f"bench/{run}/object {n:07d}.bin"
    bucket = event["Key"].split("/", 1)[0]
    event["Key"] = f"{bucket}/{name}"
    record = event["Records"][0]
    record["s3"]["object"]["key"] = quote_plus(name, safe="")
    record["s3"]["object"]["sequencer"] = f"{n:016X}"
    return event["Key"].encode(), json.dumps(event, separators=(",", ":")).encode()


async def fill(settings: Settings, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, linger_ms=20,
                                max_batch_size=1 << 20)  # fmt: skip
    await producer.start()
    try:
        for start in range(0, len(messages), 5000):
            futures = [await producer.send(topic, value, key=key) for key, value in messages[start : start + 5000]]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def raw_read(settings: Settings, topic: str, count: int) -> float:
    """Seconds for a bare aiokafka consumer to read ``count`` records from the start of ``topic``."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka.bootstrap_servers, group_id=f"raw-{topic}",
                                auto_offset_reset="earliest", enable_auto_commit=False)  # fmt: skip
    await consumer.start()
    try:
        seen, started = 0, time.perf_counter()
        while seen < count:
            batch = await consumer.getmany(timeout_ms=500, max_records=500)
            seen += sum(len(records) for records in batch.values())
        return time.perf_counter() - started
    finally:
        await consumer.stop()


async def bare_insert(settings: Settings, messages: list[tuple[bytes, bytes]], batch: int) -> float:
    """Seconds for a bare asyncpg loop to insert the rows ingest writes for ``messages`` (each event, its
    upload, its two jobs and their edge), ``batch`` events per transaction. Rows are built before timing."""
    events = [e for _, value in messages for e in parse_message(value, max_bytes=1 << 20)]
    batches = [_bare_batch(events[start : start + batch], start) for start in range(0, len(events), batch)]
    conn = await connection.connect(settings.postgres)
    try:
        started = time.perf_counter()
        for rows in batches:
            async with conn.transaction():
                ids = [r["id"] for r in await conn.fetch(SQL["bare_events"], *rows.events)]
                await conn.execute(SQL["bare_uploads"], *rows.uploads, ids, ["fingerprint"] * len(ids))
                await conn.execute(SQL["bare_jobs"], *rows.jobs, [i for i in ids for _ in "ab"], *rows.job_sources)
                await conn.execute(SQL["bare_edges"], *rows.edges)
        return time.perf_counter() - started
    finally:
        await conn.close()


@dataclass(frozen=True)
class _BareBatch:
    """One batch's rows as column arrays (the event ids are only known once inserted)."""

    events: list[Sequence[object]]
    uploads: list[Sequence[object]]
    jobs: list[Sequence[object]]
    job_sources: list[Sequence[object]]
    edges: list[Sequence[object]]


def _bare_batch(events: list[UploadEvent], first_offset: int) -> _BareBatch:
    checksums, inspects = [uuid7() for _ in events], [uuid7() for _ in events]
    n = len(events)
    return _BareBatch(
        events=[[e.bucket for e in events], [e.key for e in events], [e.version_id for e in events],
                [e.event_name for e in events], [e.sequencer for e in events], [e.etag for e in events],
                [e.size for e in events], [e.content_type for e in events], [e.event_time for e in events],
                ["bench"] * n, [0] * n, list(range(first_offset, first_offset + n)),
                [e.modified_at for e in events]],
        uploads=[[e.bucket for e in events], [e.key for e in events], [e.version_id for e in events],
                 [e.etag for e in events], [e.size for e in events], [e.modified_at for e in events]],
        jobs=[[j for pair in zip(checksums, inspects, strict=True) for j in pair], ["checksum", "inspect"] * n,
              ['{"params":{},"lineage_depth":0}'] * 2 * n, ["PENDING", "BLOCKED"] * n, [0, 1] * n,
              ["fingerprint"] * 2 * n, ["checksum", "inspect"] * n],
        job_sources=[[e.bucket for e in events for _ in "ab"], [e.key for e in events for _ in "ab"]],
        edges=[checksums, inspects],
    )  # fmt: skip


async def ingest(
    settings: Settings, topic: str, count: int, latency_events: int, group: str
) -> tuple[float, list[float]]:
    """Seconds for consumer group ``group`` to turn ``count`` pre-filled events into committed jobs; then
    ``latency_events`` light-load latencies (ms)."""
    scoped = settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(update={"events_topic": topic}),
            "ingest": settings.ingest.model_copy(update={"group_id": group}),
        }
    )
    async with runtime.open_engine(scoped) as engine:
        ingestor = Ingestor(
            engine, parse_rules(TWO_JOBS), scoped.ingest, scoped.kafka, IngestMetrics(CollectorRegistry())
        )
        await ingestor.start()
        try:
            seconds = await drain(ingestor, count)
            latencies = await light_load(scoped, ingestor, latency_events) if latency_events else []
        finally:
            await ingestor.stop()
    return seconds, latencies


async def drain(ingestor: Ingestor, count: int) -> float:
    """Seconds for the production loop (``run``) to commit the jobs of ``count`` events."""
    consumed = ingestor.metrics.messages_consumed
    stop = asyncio.Event()
    started = time.perf_counter()
    running = asyncio.create_task(ingestor.run(stop))
    # Polls the ingestor's own counter: the production loop offers no completion event to wait on.
    while consumed._value.get() < count:  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    seconds = time.perf_counter() - started
    stop.set()
    await running
    return seconds


async def light_load(settings: Settings, ingestor: Ingestor, events: int) -> list[float]:
    """Publish ``events`` one every 50 ms; for each, Kafka timestamp -> its jobs committed."""
    template = await real_minio_event(settings.model_copy(update={"kafka": settings.kafka.model_copy(
        update={"events_topic": "conveyor.events"})}))  # fmt: skip
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers)
    await producer.start()
    latencies: list[float] = []

    async def send() -> None:
        run = uuid.uuid4().hex[:8]
        for n in range(events):
            key, value = variant(template, n, run)
            await producer.send_and_wait(settings.kafka.events_topic, value, key=key)
            await asyncio.sleep(0.05)

    sender = asyncio.create_task(send())
    try:
        while len(latencies) < events:
            report = await ingestor.run_once(timeout_ms=20)
            committed_ms = time.time() * 1000
            latencies += [committed_ms - ts for ts in report.record_timestamps_ms]
        await sender
    finally:
        await producer.stop()
    return latencies


async def run(settings: Settings, *, events: int = EVENTS, latency_events: int = LIGHT_EVENTS) -> IngestFigures:
    topic = f"conveyor.bench.{uuid.uuid4().hex[:8]}"
    partitions = settings.kafka.events_partitions
    kafka_admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers)
    await kafka_admin.start()
    try:
        await kafka_admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
        template = await real_minio_event(settings)
        run_id = uuid.uuid4().hex[:8]
        messages = [variant(template, n, run_id) for n in range(events)]
        await fill(settings, topic, messages)
        raw_seconds = await raw_read(settings, topic, events)
        batch = settings.ingest.batch_max_records
        bare_seconds: list[float] = []
        ingest_seconds: list[float] = []
        latencies: list[float] = []
        for turn in range(ROUNDS):
            scoped = settings.model_copy(update={"postgres": await fresh_database(settings.postgres, BENCH_DB)})
            bare_seconds.append(await bare_insert(scoped, messages, batch))
            scoped = settings.model_copy(update={"postgres": await fresh_database(settings.postgres, BENCH_DB)})
            light = latency_events if turn == ROUNDS - 1 else 0  # it adds to the topic: only after the last drain
            seconds, latencies = await ingest(scoped, topic, events, light, f"bench-{topic}-{turn}")
            ingest_seconds.append(seconds)
    finally:
        await kafka_admin.delete_topics([topic])
        await kafka_admin.close()
    return IngestFigures(events, partitions, batch, raw_seconds, bare_seconds, ingest_seconds, latencies)
