"""Prometheus from Debian's package, scraping the conveyor processes that `conveyor run` starts.

Its configuration is deploy/prometheus/prometheus.yml (the file `promtool check config` validates), with
its relative paths pointed at the stack: the targets directory in the state dir, the rules in deploy/.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import urlopen

from conveyor.stack.process import ProcessSpec
from conveyor.stack.service import DEPLOY_LOCAL, Service
from conveyor.stack.tools import apt_install

PROMETHEUS = Path("/usr/bin/prometheus")
CONFIG = DEPLOY_LOCAL.parent / "prometheus"


class Prometheus(Service):
    name = "prometheus"

    @property
    def port(self) -> int:
        return self.settings.stack.prometheus_port

    @property
    def targets(self) -> Path:
        """Drop a ``<name>.json`` file_sd list here and Prometheus scrapes it within 5 s."""
        return self.paths.data("prometheus") / "targets"

    def install(self) -> None:
        if not PROMETHEUS.exists():
            apt_install(["prometheus"], purpose="to run Prometheus and promtool")

    def prepare(self) -> None:
        self.targets.mkdir(parents=True, exist_ok=True)
        minio = urlsplit(self.settings.s3.endpoint).netloc
        text = (CONFIG / "prometheus.yml").read_text()
        text = text.replace("rules/conveyor.rules.yml", str(CONFIG / "rules" / "conveyor.rules.yml"))
        text = text.replace("targets/*.json", str(self.targets / "*.json")).replace("127.0.0.1:19000", minio)
        (self.paths.data("prometheus") / "prometheus.yml").write_text(text)

    def spec(self) -> ProcessSpec:
        data = self.paths.data("prometheus")
        argv = [str(PROMETHEUS), f"--config.file={data / 'prometheus.yml'}", f"--storage.tsdb.path={data / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=2d"]  # fmt: skip
        return ProcessSpec(argv, self.base_env(), data, self.paths.log("prometheus"))

    async def probe(self) -> None:
        status = await asyncio.to_thread(self._ready)
        if status != 200:
            raise RuntimeError(f"prometheus answered {status}")

    def _ready(self) -> int:
        with urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as response:
            return int(response.status)

    def write_targets(self, group: str, targets: list[str], labels: dict[str, str]) -> None:
        """Tell Prometheus to scrape ``targets`` (host:port) under ``labels``."""
        (self.targets / f"{group}.json").write_text(json.dumps([{"targets": targets, "labels": labels}]))

    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"
