"""A second MinIO, from the stack's build, in the queued mode (a queue dir and synchronous events).

The stack's own MinIO runs the default mode; tests and benchmarks put the two side by side.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from minio import Minio

from conveyor.bootstrap import ensure_buckets, ensure_notifications
from conveyor.pipeline.storage.client import s3_client
from conveyor.pipeline.storage.settings import S3Settings
from conveyor.settings import Settings
from conveyor.stack.minio import MinIO
from tests.integration.api_server import free_port


@dataclass(frozen=True)
class QueuedMinIO:
    client: Minio
    bucket: str
    #: The S3 settings that reach it (its endpoint, the bucket).
    s3: S3Settings


@contextmanager
def queued_minio(settings: Settings, home: Path, bucket: str = "queued") -> Iterator[QueuedMinIO]:
    """A second MinIO (the stack's build) in the queued mode: a queue dir and synchronous events."""
    port = free_port()
    env = {"MINIO_ROOT_USER": settings.s3.access_key, "MINIO_ROOT_PASSWORD": settings.s3.secret_key.get_secret_value(),
           "MINIO_BROWSER": "off", "MINIO_UPDATE": "off", "MINIO_API_SYNC_EVENTS": "on", "PATH": os.environ["PATH"],
           "MINIO_NOTIFY_KAFKA_ENABLE_PRIMARY": "on",
           "MINIO_NOTIFY_KAFKA_BROKERS_PRIMARY": settings.kafka.bootstrap_servers,
           "MINIO_NOTIFY_KAFKA_TOPIC_PRIMARY": settings.kafka.events_topic,
           "MINIO_NOTIFY_KAFKA_QUEUE_DIR_PRIMARY": str(home / "queue")}  # fmt: skip
    (home / "queue").mkdir()
    argv = [str(MinIO(settings).binary), "server", str(home / "data"), "--address", f"127.0.0.1:{port}", "--quiet",
            "--console-address", f"127.0.0.1:{free_port()}"]  # fmt: skip
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        s3 = settings.s3.model_copy(update={"endpoint": f"http://127.0.0.1:{port}", "buckets": [bucket]})
        client = s3_client(s3, retries=0)
        _wait_for(client)
        ensure_buckets(client, [bucket])
        ensure_notifications(client, s3)
        yield QueuedMinIO(client, bucket, s3)
    finally:
        process.terminate()
        process.wait(30)


def _wait_for(client: Minio) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            client.list_buckets()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)  # not up yet
        else:
            return
