"""versitygw: a maintained Apache-2.0 S3 gateway over a POSIX directory, emitting S3 events to Kafka.

Its events are server-wide (no bucket rules) in the plain S3 shape ``{"Records": [...]}``. It aborts at
start when the topic does not exist, so the stack starts it after Kafka has its topics.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from conveyor.pipeline.storage.client import s3_client
from conveyor.stack.gobuild import go_install
from conveyor.stack.process import ProcessSpec
from conveyor.stack.service import Service

PACKAGE = "github.com/versity/versitygw/cmd/versitygw"


class VersityGW(Service):
    """versitygw's posix backend on loopback, serving the same endpoint and keys MinIO would."""

    name = "versitygw"

    @property
    def binary(self) -> Path:
        version = self.settings.stack.versitygw_version
        return self.paths.cache / "bin" / f"versitygw-{version}" / "versitygw"

    def install(self) -> None:
        go_install(package=PACKAGE, version=self.settings.stack.versitygw_version, binary="versitygw",
                   cache=self.paths.cache)  # fmt: skip

    def prepare(self) -> None:
        (self.paths.data("versitygw") / "data").mkdir(parents=True, exist_ok=True)

    def spec(self) -> ProcessSpec:
        s3, kafka = self.settings.s3, self.settings.kafka
        env = {
            **self.base_env(),
            "ROOT_ACCESS_KEY": s3.access_key,
            "ROOT_SECRET_KEY": s3.secret_key.get_secret_value(),
        }
        argv = [str(self.binary), "--port", s3.netloc, "--region", s3.region,
                "--event-kafka-url", kafka.bootstrap_servers.split(",")[0], "--event-kafka-topic", kafka.events_topic,
                "--quiet", "posix", str(self.paths.data("versitygw") / "data")]  # fmt: skip
        return ProcessSpec(argv, env, self.paths.data("versitygw"), self.paths.log("versitygw"))

    async def probe(self) -> None:
        client = s3_client(self.settings.s3, timeout_seconds=5.0, retries=0)
        await asyncio.to_thread(client.list_buckets)

    def endpoint(self) -> str:
        return self.settings.s3.endpoint
