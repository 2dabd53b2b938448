"""Clients for the real services: Kafka readers positioned before an action, the S3 client."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from minio import Minio

from conveyor.db.connection import Pool
from conveyor.db.settings import PostgresSettings
from conveyor.pipeline.engine import Engine
from conveyor.pipeline.engine.dag import JobSpec, SourceObject
from conveyor.pipeline.handlers import builtin_handlers
from conveyor.pipeline.handlers.base import JobContext
from conveyor.pipeline.storage.client import s3_client
from conveyor.settings import Settings
from tests import isolation
from tests.integration.api_server import ApiServer, api_server


@dataclass
class KafkaRecord:
    key: bytes | None
    value: bytes
    partition: int
    offset: int

    def json(self) -> Any:
        return json.loads(self.value)


class TopicReader:
    """Reads a topic from the offsets it had when the reader was created: only what a test caused."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self.bootstrap_servers, self.topic = bootstrap_servers, topic
        self.start: dict[TopicPartition, int] = {}

    async def mark(self) -> None:
        """Remember the current end of every partition."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers)
        await admin.start()
        try:
            (description,) = await admin.describe_topics([self.topic])
        finally:
            await admin.close()
        partitions = [TopicPartition(self.topic, p["partition"]) for p in description["partitions"]]
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap_servers, enable_auto_commit=False)
        await consumer.start()
        try:
            self.start = dict(await consumer.end_offsets(partitions))
        finally:
            await consumer.stop()

    async def read_until(self, done: Callable[[list[KafkaRecord]], bool], within: float = 30.0) -> list[KafkaRecord]:
        """Records since :meth:`mark`, until ``done(records)`` or ``within`` seconds pass (then whatever came)."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap_servers, enable_auto_commit=False)
        await consumer.start()
        records: list[KafkaRecord] = []
        try:
            consumer.assign(list(self.start))
            for tp, offset in self.start.items():
                consumer.seek(tp, offset)
            deadline = time.monotonic() + within
            while not done(records) and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                for messages in batch.values():
                    records += [KafkaRecord(m.key, m.value, m.partition, m.offset) for m in messages]
        finally:
            await consumer.stop()
        return records


@pytest.fixture
async def events(settings: Settings) -> AsyncIterator[TopicReader]:
    """A reader of the events topic, marked at the start of the test."""
    reader = TopicReader(settings.kafka.bootstrap_servers, settings.kafka.events_topic)
    await reader.mark()
    yield reader


@pytest.fixture(scope="session")
def s3(settings: Settings) -> Minio:
    return s3_client(settings.s3)


async def put_bytes(client: Minio, bucket: str, key: str, data: bytes) -> None:
    await asyncio.to_thread(client.put_object, bucket, key, io.BytesIO(data), len(data))


@dataclass(frozen=True)
class Topics:
    events: str
    dead_letters: str


@pytest.fixture
async def topics(settings: Settings) -> AsyncIterator[Topics]:
    """A fresh events topic (4 partitions) and dead-letter topic, deleted after the test."""
    name = f"conveyor.test.{uuid.uuid4().hex[:10]}"
    created = Topics(name, f"{name}.dlq")
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(created.events, num_partitions=4, replication_factor=1),
             NewTopic(created.dead_letters, num_partitions=1, replication_factor=1)]
        )  # fmt: skip
        yield created
        await admin.delete_topics([created.events, created.dead_letters])
    finally:
        await admin.close()


async def park_group_at_end(settings: Settings, group: str) -> None:
    """Commit the group's offsets at the shared topic's end: a test then ingests only what it uploads."""
    topic = settings.kafka.events_topic
    kafka_admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers)
    await kafka_admin.start()
    try:
        (description,) = await kafka_admin.describe_topics([topic])
    finally:
        await kafka_admin.close()
    partitions = [TopicPartition(topic, p["partition"]) for p in description["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap_servers, group_id=group,
                                enable_auto_commit=False)  # fmt: skip
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        await consumer.commit({tp: await consumer.position(tp) for tp in partitions})
    finally:
        await consumer.stop()


def scrape(port: int) -> list[str]:
    """The lines a process's /metrics serves on ``port``."""
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines()


def metric_value(port: int, name: str) -> float:
    """The value of the unlabelled series ``name`` on a process's /metrics."""
    (line,) = [line for line in scrape(port) if line.startswith(f"{name} ")]
    return float(line.split()[1])


def scoped_settings(settings: Settings, database: PostgresSettings, topics: Topics, **ingest: Any) -> Settings:
    """The suite's settings pointed at a test's own database, topics and consumer group."""
    kafka = settings.kafka.model_copy(update={"events_topic": topics.events, "dead_letter_topic": topics.dead_letters})
    group = {"group_id": isolation.group("test"), **ingest}
    # The suite's own bucket, and `uploads` for the synthetic events tests publish on their own topics.
    s3 = settings.s3.model_copy(update={"buckets": [*settings.s3.buckets, "uploads"]})
    return settings.model_copy(
        update={
            "postgres": database,
            "kafka": kafka,
            "s3": s3,
            "ingest": settings.ingest.model_copy(update=group),
            "metrics": settings.metrics.model_copy(update={"enabled": False}),
        }
    )


def environment(settings: Settings) -> dict[str, str]:
    """CONVEYOR_* variables that make a `conveyor` subprocess use ``settings``' database, topics and group."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")},
        "CONVEYOR_POSTGRES__DATABASE": settings.postgres.database,
        "CONVEYOR_KAFKA__EVENTS_TOPIC": settings.kafka.events_topic,
        "CONVEYOR_KAFKA__DEAD_LETTER_TOPIC": settings.kafka.dead_letter_topic,
        "CONVEYOR_INGEST__GROUP_ID": settings.ingest.group_id,
        "CONVEYOR_S3__BUCKETS": json.dumps(settings.s3.buckets),
        "CONVEYOR_METRICS__ENABLED": "false",
    }


async def publish(
    settings: Settings, topic: str, messages: list[tuple[bytes | None, bytes]],
    headers: list[tuple[str, bytes]] | None = None,
) -> None:  # fmt: skip
    """Send (key, value) messages, each with ``headers``, and wait until Kafka has them all."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, linger_ms=5,
                                max_request_size=8 * 1024 * 1024)  # fmt: skip
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key, headers=headers) for key, value in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def committed_offsets(settings: Settings) -> dict[TopicPartition, int]:
    """The offsets ``settings``' ingest group has committed, by partition."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(settings.ingest.group_id)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in offsets.items()}


async def wait_until(predicate: Callable[[], Awaitable[bool]], *, within: float, what: str) -> None:
    """Poll ``predicate`` until true, or fail naming ``what``."""
    deadline = time.monotonic() + within
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(0.2)


@pytest.fixture
def api(database: PostgresSettings) -> Iterator[ApiServer]:
    """``conveyor api`` serving the test's database."""
    with api_server(database.database) as server:
        yield server


@pytest.fixture
def engine(pool: Pool) -> Engine:
    """An engine on a fresh database, with the real clock."""
    return Engine(pool, lease_grace_seconds=5)


@pytest.fixture(scope="session")
def scratch_bucket(s3: Minio) -> str:
    """A bucket without notification rules: handler tests' objects start no pipelines. Removed at the end."""
    name = isolation.SCRATCH_BUCKET
    if not s3.bucket_exists(name):
        s3.make_bucket(name)
    return name


async def run_handler(
    engine: Engine, s3: Minio, job_type: str, bucket: str, key: str, params: dict[str, Any] | None = None
) -> Any:
    """Create a job on s3://bucket/key, claim it, and run the built-in handler for ``job_type`` on it."""
    await engine.create(JobSpec(job_type=job_type, payload={"params": params or {}}), source=SourceObject(bucket, key))
    (job,) = await engine.claim(uuid.uuid4(), job_types=[job_type])
    handler = builtin_handlers().get(job_type)
    assert handler is not None
    ctx = JobContext(job=job, engine=engine, s3=s3, log=logging.LoggerAdapter(logging.getLogger("test"), {}))
    return await handler(ctx)


# -- worker processes, started as users start them ----------------------------------------------------

FAST = {
    "CONVEYOR_WORKER__POLL_INTERVAL_SECONDS": "0.5",
    "CONVEYOR_WORKER__HEARTBEAT_INTERVAL_SECONDS": "0.5",
    "CONVEYOR_ENGINE__RESCUE_INTERVAL_SECONDS": "0.5",
    "CONVEYOR_ENGINE__WORKER_LOST_AFTER_SECONDS": "3",
    "CONVEYOR_ENGINE__LEADER_CAMPAIGN_INTERVAL_SECONDS": "0.5",
    "CONVEYOR_WORKER__HANDLER_MODULES": '["tests.support.handlers"]',
    "CONVEYOR_METRICS__ENABLED": "false",
}


class Workers:
    """Starts `conveyor worker` processes on the test's database; stops whatever is left at the end."""

    def __init__(self, database: PostgresSettings) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
        self.env.update(FAST, CONVEYOR_POSTGRES__DATABASE=database.database, PYTHONPATH=str(Path.cwd()))
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        job_types = "test.noop,test.sleep,test.sleep_first,test.flaky,test.later,test.permanent,test.slow_lines"
        argv = [sys.executable, "-m", "conveyor", "worker", "--job-types", job_types, *args]
        process = subprocess.Popen(argv, env={**self.env, **env}, stderr=subprocess.DEVNULL)
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture
def workers(database: PostgresSettings) -> Iterator[Workers]:
    running = Workers(database)
    yield running
    running.stop_all()


def executions(log: Path) -> Counter[tuple[str, str]]:
    """(job id, event) -> how many times the test handler logged it."""
    if not log.exists():
        return Counter()
    return Counter((line.split()[0], line.split()[3]) for line in log.read_text().splitlines())
