"""Clients for the real services: Kafka readers positioned before an action, the S3 client."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from minio import Minio

from conveyor.settings import Settings
from pipeline.storage import s3_client


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
