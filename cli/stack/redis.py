"""A private Redis from Debian's package: no persistence (Redis never holds the only copy of anything)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import redis.asyncio as aioredis

from conveyor.stack.process import ProcessSpec
from conveyor.stack.service import Service
from conveyor.stack.tools import apt_install

REDIS_SERVER = Path("/usr/bin/redis-server")


class Redis(Service):
    """redis-server in the foreground on the port of ``redis.url``."""

    name = "redis"

    def install(self) -> None:
        if not REDIS_SERVER.exists():
            apt_install(["redis-server"], purpose="to run Redis")

    def prepare(self) -> None:
        self.paths.data("redis").mkdir(parents=True, exist_ok=True)

    def spec(self) -> ProcessSpec:
        port = str(urlsplit(self.settings.redis.url).port or 6379)
        argv = [str(REDIS_SERVER), "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--dir", str(self.paths.data("redis"))]  # fmt: skip
        return ProcessSpec(argv, self.base_env(), self.paths.data("redis"), self.paths.log("redis"))

    async def probe(self) -> None:
        client = aioredis.Redis.from_url(self.settings.redis.url, socket_timeout=2, socket_connect_timeout=2)
        try:
            if not await client.ping():
                raise RuntimeError("redis did not answer PING")
        finally:
            await client.aclose()

    def endpoint(self) -> str:
        return self.settings.redis.url
