"""MinIO publishes each upload to Kafka, under the raw name, even when Kafka was down at upload time."""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import unquote_plus

from minio import Minio

from conveyor.settings import Settings
from tests.conftest import stack
from tests.integration.conftest import KafkaRecord, TopicReader, put_bytes

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


async def test_queue_dir_delivers_events_published_while_kafka_was_down(
    settings: Settings, s3: Minio, events: TopicReader
) -> None:
    bucket = settings.s3.buckets[0]
    name = f"{uuid.uuid4().hex}/while kafka was down.txt"
    stack("down", "kafka")
    try:
        # With MINIO_API_SYNC_EVENTS=on and a queue dir, the PUT succeeds once the event is on disk.
        await asyncio.wait_for(put_bytes(s3, bucket, name, b"queued"), timeout=30)
    finally:
        stack("up", "kafka")

    records = await events.read_until(_for_key(bucket, name), within=60)  # type: ignore[arg-type]

    assert any(r.key == f"{bucket}/{name}".encode() for r in records), "the queued event never arrived"
