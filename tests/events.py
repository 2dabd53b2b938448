"""Building notification messages the way S3 servers send them, for tests that publish to Kafka."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import quote, quote_plus


def minio_message(
    bucket: str,
    key: str,
    *,
    sequencer: str | None = None,
    size: int = 10,
    event_name: str = "s3:ObjectCreated:Put",
    metadata: dict[str, str] | None = None,
    etag: str = "5d41402abc4b2a76b9719d911017c592",
) -> bytes:
    """MinIO's Kafka value: the wrapper with the raw Key, and the record's key query-escaped like Go does."""
    record = _record(bucket, quote_plus(key, safe=""), event_name, size, etag, sequencer, metadata, "minio:s3")
    return _dump({"EventName": event_name, "Key": f"{bucket}/{key}", "Records": [record]})


def aws_message(
    bucket: str, key: str, *, sequencer: str | None = None, size: int = 10, etag: str = "abc",
    event_time: str | None = None,
) -> bytes:  # fmt: skip
    """AWS's shape: no wrapper, event names without "s3:", the key URL-encoded (space as '+', '/' kept)."""
    escaped = quote_plus(key, safe="/")
    record = _record(bucket, escaped, "ObjectCreated:Put", size, etag, sequencer, None, "aws:s3")
    if event_time is not None:
        record["eventTime"] = event_time
    return _dump({"Records": [record]})


def versitygw_message(bucket: str, key: str, *, event_time: str = "2026-11-28T21:34:12Z") -> bytes:
    """versitygw's shape: no wrapper, the raw key, a constant sequencer, its configuration id."""
    record = _record(bucket, key, "s3:ObjectCreated:Put", 5, '"abc"', "1", None, "aws:s3")
    record["s3"]["configurationId"] = "webhook-global"
    record["eventTime"] = event_time
    return _dump({"Records": [record]})


def _record(
    bucket: str, key: str, event_name: str, size: int, etag: str, sequencer: str | None,
    metadata: dict[str, str] | None, source: str,
) -> dict[str, Any]:  # fmt: skip
    return {
        "eventVersion": "2.0",
        "eventSource": source,
        "eventTime": "2026-11-28T09:26:53.612Z",
        "eventName": event_name,
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "Config",
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{quote(bucket)}"},
            "object": {
                "key": key,
                "size": size,
                "eTag": etag,
                "contentType": "application/octet-stream",
                "userMetadata": metadata or {},
                "sequencer": sequencer or uuid.uuid4().hex[:16].upper(),
            },
        },
    }


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
