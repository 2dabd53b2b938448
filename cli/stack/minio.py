"""MinIO built from source with ``go install``, publishing bucket events to Kafka.

The Kafka target has a queue dir and ``MINIO_API_SYNC_EVENTS=on``: an upload's event is on disk before
the PUT returns, and replayed until Kafka takes it. Without both, MinIO drops events on restart or
while Kafka is down.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from conveyor.pipeline.storage.client import s3_client
from conveyor.stack.gobuild import go_install
from conveyor.stack.process import ProcessSpec
from conveyor.stack.service import Service

MODULE = "github.com/minio/minio"
#: The notification target id: bucket rules address it as arn:minio:sqs::PRIMARY:kafka.
TARGET_ID = "PRIMARY"


class MinIO(Service):
    """A single-drive MinIO server on loopback."""

    name = "minio"

    @property
    def binary(self) -> Path:
        version = self.settings.stack.minio_version
        return self.paths.cache / "bin" / f"minio-{version}" / "minio"

    def install(self) -> None:
        go_install(package=MODULE, version=self.settings.stack.minio_version, binary="minio", cache=self.paths.cache)

    @property
    def queue_dir(self) -> Path:
        return self.paths.data("minio") / "queue"

    def prepare(self) -> None:
        for directory in (self.paths.data("minio") / "data", self.queue_dir):
            directory.mkdir(parents=True, exist_ok=True)

    def spec(self) -> ProcessSpec:
        s3, kafka = self.settings.s3, self.settings.kafka
        env = {
            **self.base_env(),
            "MINIO_ROOT_USER": s3.access_key,
            "MINIO_ROOT_PASSWORD": s3.secret_key.get_secret_value(),
            "MINIO_BROWSER": "off",
            "MINIO_UPDATE": "off",
            # Prometheus scrapes MinIO's notification metrics (events skipped, queue length) without a token.
            "MINIO_PROMETHEUS_AUTH_TYPE": "public",
            "MINIO_API_SYNC_EVENTS": "on",
            f"MINIO_NOTIFY_KAFKA_ENABLE_{TARGET_ID}": "on",
            f"MINIO_NOTIFY_KAFKA_BROKERS_{TARGET_ID}": kafka.bootstrap_servers,
            f"MINIO_NOTIFY_KAFKA_TOPIC_{TARGET_ID}": kafka.events_topic,
            f"MINIO_NOTIFY_KAFKA_QUEUE_DIR_{TARGET_ID}": str(self.queue_dir),
        }
        argv = [str(self.binary), "server", str(self.paths.data("minio") / "data"), "--address", s3.netloc,
                "--console-address", f"127.0.0.1:{self.settings.stack.minio_console_port}", "--quiet"]  # fmt: skip
        return ProcessSpec(argv, env, self.paths.data("minio"), self.paths.log("minio"))

    async def probe(self) -> None:
        client = s3_client(self.settings.s3, timeout_seconds=5.0, retries=0)
        await asyncio.to_thread(client.list_buckets)

    def endpoint(self) -> str:
        return self.settings.s3.endpoint
