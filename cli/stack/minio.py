"""MinIO built from source with ``go install``, publishing bucket events to Kafka.

By default the Kafka target has no queue dir and events are asynchronous: each event leaves the moment
the object is written, and a PUT never waits for Kafka. MinIO then drops the events it cannot send
(Kafka down, a restart); conveyor's reconciler finds those objects by listing the bucket. With
``stack.minio_queue_dir`` the events are written to disk first and sent from there, on MinIO's fixed
3 s tick: nothing is dropped while Kafka is down, and every event waits up to 3 s.
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
            f"MINIO_NOTIFY_KAFKA_ENABLE_{TARGET_ID}": "on",
            f"MINIO_NOTIFY_KAFKA_BROKERS_{TARGET_ID}": kafka.bootstrap_servers,
            f"MINIO_NOTIFY_KAFKA_TOPIC_{TARGET_ID}": kafka.events_topic,
        }
        if self.settings.stack.minio_sync_events:
            env["MINIO_API_SYNC_EVENTS"] = "on"
        if self.settings.stack.minio_queue_dir:
            env[f"MINIO_NOTIFY_KAFKA_QUEUE_DIR_{TARGET_ID}"] = str(self.queue_dir)
        argv = [str(self.binary), "server", str(self.paths.data("minio") / "data"), "--address", s3.netloc,
                "--console-address", f"127.0.0.1:{self.settings.stack.minio_console_port}", "--quiet"]  # fmt: skip
        return ProcessSpec(argv, env, self.paths.data("minio"), self.paths.log("minio"))

    async def probe(self) -> None:
        client = s3_client(self.settings.s3, timeout_seconds=5.0, retries=0)
        await asyncio.to_thread(client.list_buckets)

    def endpoint(self) -> str:
        return self.settings.s3.endpoint
