"""Apache Kafka in single-node KRaft mode: jars from Maven Central (deploy/local/kafka/pom.xml), run with java."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from conveyor import bootstrap
from conveyor.stack.process import ProcessSpec
from conveyor.stack.service import DEPLOY_LOCAL, Service
from conveyor.stack.tools import MissingTool, require

KAFKA_DIR = DEPLOY_LOCAL / "kafka"
JDK_HINT = "install a JDK 17 (`apt-get install openjdk-17-jdk-headless`)"


class Kafka(Service):
    """The broker and controller in one JVM, listening on loopback only."""

    name = "kafka"

    @property
    def libs(self) -> Path:
        # Keyed by the POM's content: changing the Kafka version in the POM resolves a new classpath.
        digest = hashlib.sha256((KAFKA_DIR / "pom.xml").read_bytes()).hexdigest()[:12]
        return self.paths.cache / "kafka" / digest / "libs"

    @property
    def broker_port(self) -> int:
        return int(self.settings.kafka.bootstrap_servers.split(",")[0].rpartition(":")[2])

    def install(self) -> None:
        require("java", purpose="to run Kafka", install_hint=JDK_HINT)
        if self.libs.is_dir():
            return
        mvn = require("mvn", purpose="to fetch Kafka's jars", install_hint="install Maven (`apt-get install maven`)")
        build = self.libs.parent
        build.mkdir(parents=True, exist_ok=True)
        shutil.copy(KAFKA_DIR / "pom.xml", build / "pom.xml")
        staging = build / "libs.partial"
        print(
            "[stack] resolving Kafka's jars from Maven Central (first time only) ...",
            file=sys.stderr,
            flush=True,
        )
        result = subprocess.run(
            [str(mvn), "-B", "-q", "-f", str(build / "pom.xml"), "package", f"-DoutputDirectory={staging}",
             f"-Dmaven.repo.local={self.paths.cache / 'm2'}"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise MissingTool(f"mvn could not resolve Kafka's jars:\n{result.stdout[-3000:]}{result.stderr[-2000:]}")
        staging.rename(self.libs)

    @property
    def config(self) -> Path:
        return self.paths.data("kafka") / "server.properties"

    def prepare(self) -> None:
        data = self.paths.data("kafka")
        data.mkdir(parents=True, exist_ok=True)
        template = (KAFKA_DIR / "server.properties").read_text()
        self.config.write_text(
            template.format(
                broker_port=self.broker_port,
                controller_port=self.settings.stack.kafka_controller_port,
                log_dir=data / "log",
            )
        )
        if not (data / "log" / "meta.properties").exists():
            self._format_storage()

    def _format_storage(self) -> None:
        # A cluster id is 16 random bytes, URL-safe base64 without padding, and must not start with '-'.
        cluster_id = "c" + base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()[1:]
        result = subprocess.run(
            ["java", "-Xmx256m", "-cp", f"{self.libs}/*", "kafka.tools.StorageTool", "format",
             "-t", cluster_id, "-c", str(self.config), "--ignore-formatted"],
            capture_output=True, text=True, check=False, env=self.base_env(),
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"kafka storage format failed:\n{result.stdout}{result.stderr}")

    def spec(self) -> ProcessSpec:
        heap = self.settings.stack.kafka_heap
        argv = ["java", f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
                f"-Dkafka.logs.dir={self.paths.logs}",
                f"-Dlog4j2.configurationFile={KAFKA_DIR / 'log4j2.properties'}",
                "-cp", f"{self.libs}/*", "kafka.Kafka", str(self.config)]  # fmt: skip
        java = require("java", purpose="to run Kafka", install_hint=JDK_HINT)
        argv[0] = str(java.resolve())
        return ProcessSpec(argv, self.base_env(), self.paths.data("kafka"), self.paths.log("kafka"))

    async def probe(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.kafka.bootstrap_servers, request_timeout_ms=5000)
        await admin.start()
        try:
            await admin.list_topics()
        finally:
            await admin.close()

    async def after_ready(self) -> None:
        # The S3 servers publish to the events topic; versitygw refuses to start until it exists.
        await bootstrap.ensure_topics(self.settings.kafka)

    def endpoint(self) -> str:
        return f"kafka://{self.settings.kafka.bootstrap_servers}"
