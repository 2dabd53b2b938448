"""`conveyor api` started as users start it, on a test database and a free port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

TOKEN = "test-token"
READ_ONLY = "read-only-token"


@dataclass(frozen=True)
class ApiServer:
    url: str
    process: subprocess.Popen[bytes]

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextmanager
def api_server(database: str, **env: str) -> Iterator[ApiServer]:
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    environment.update(
        CONVEYOR_POSTGRES__DATABASE=database, CONVEYOR_API__PORT=str(port), CONVEYOR_API__TOKENS=f'["{TOKEN}"]',
        CONVEYOR_API__READ_ONLY_TOKENS=f'["{READ_ONLY}"]', CONVEYOR_API__MAX_BODY_BYTES="65536",
        CONVEYOR_API__CLUSTER_METRICS_INTERVAL_SECONDS="0.5",
    )  # fmt: skip
    environment.update(env)
    process = subprocess.Popen([sys.executable, "-m", "conveyor", "api"], env=environment,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    server = ApiServer(f"http://127.0.0.1:{port}", process)
    try:
        _wait_ready(server)
        yield server
    finally:
        process.terminate()
        process.wait(30)


def _wait_ready(server: ApiServer) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError("conveyor api exited during start-up")
        try:
            if httpx.get(f"{server.url}/health", timeout=2).status_code in (200, 401, 503):  # 401: /health protected
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("conveyor api did not answer /health in 30 s")
