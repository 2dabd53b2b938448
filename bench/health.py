"""``GET /health`` as a load balancer probes it, beside ``GET /health/live`` (no I/O) in the same run.

A probe is a few bytes on a kept-alive connection, so the timings come from a minimal HTTP/1.1 client on a
raw socket, the two paths taken in turn. The same requests through httpx are shown beside them: that
client's own Python is most of a loopback round trip, and its pauses land in the tail.

``python -m bench.health`` (``make bench`` runs it too) writes its block of bench/RESULTS.md.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from bench import report
from bench.database import drop_database, fresh_database
from conveyor import settings as settings_module
from tests.integration.api_server import api_server

RESULTS = Path(__file__).parent / "RESULTS.md"
REQUESTS = 2_000
TARGET_P99_MS = 2.0
PATHS = ("/health", "/health/live")


class Probe:
    """A load balancer's probe: one kept-alive HTTP/1.1 connection, a fixed request, the response read whole."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        self.host = f"{parts.hostname}:{parts.port}"
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")

    def get(self, path: str) -> int:
        """The status of ``GET path``, once its body is read (a Content-Length response, as uvicorn sends)."""
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
        status = int(self.reader.readline().split()[1])
        length = None
        while (header := self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = header.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        assert length is not None, f"no Content-Length in the response to {path}"
        self.reader.read(length)
        return status

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def timings(get: Callable[[str], int], paths: tuple[str, ...]) -> dict[str, list[float]]:
    """Milliseconds of REQUESTS GETs of each path, the paths in turn, after a warm-up; sorted per path.
    The client's collector is off while timing: its pauses are not the server's."""
    for _ in range(50):
        for path in paths:
            get(path)
    durations: dict[str, list[float]] = {path: [] for path in paths}
    gc.disable()
    try:
        for _ in range(REQUESTS):
            for path in paths:
                started = time.perf_counter()
                assert get(path) == 200
                durations[path].append((time.perf_counter() - started) * 1000)
    finally:
        gc.enable()
    return {path: sorted(values) for path, values in durations.items()}


def measure(url: str) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """(probe timings, httpx timings) of both paths."""
    probe = Probe(url)
    try:
        raw = timings(probe.get, PATHS)
    finally:
        probe.close()
    with httpx.Client(base_url=url, timeout=10) as client:
        through_httpx = timings(lambda path: client.get(path).status_code, PATHS)
    return raw, through_httpx


def p99(durations: list[float]) -> float:
    return durations[int(0.99 * len(durations)) - 1]


def line(path: str, raw: list[float], through_httpx: list[float]) -> list[str]:
    return [f"GET {path}", f"{statistics.median(raw):.2f}", f"{p99(raw):.2f}",
            f"{statistics.median(through_httpx):.2f}", f"{p99(through_httpx):.2f}"]  # fmt: skip


async def main() -> None:
    settings = settings_module.load()
    database = f"conveyor_bench_health_{uuid.uuid4().hex[:8]}"
    await fresh_database(settings.postgres, database)  # health needs no data
    try:
        with api_server(database) as server:
            raw, through_httpx = await asyncio.to_thread(measure, server.url)
    finally:
        await drop_database(settings.postgres, database)
    section = report.Section("HTTP API: GET /health as a load balancer probes it", "python -m bench.health")
    section.text(
        f"{REQUESTS:,} requests of each path, the two in turn, on one kept-alive connection to `conveyor api` (one "
        "uvicorn process) on loopback, after 50 of each to warm up; `/health/live` does no I/O and is the floor "
        "beside it. The probe is what a load balancer sends: a fixed HTTP/1.1 request on a raw socket, the "
        "response read whole. The same requests through httpx, on a connection of their own afterwards, show "
        "how much of a round trip a Python HTTP client adds. The client's collector is off while timing."
    )
    section.table(
        ["endpoint", "probe p50 ms", "probe p99 ms", "httpx p50 ms", "httpx p99 ms"],
        [line(path, raw[path], through_httpx[path]) for path in PATHS],
    )
    health_p99 = p99(raw["/health"])
    section.text(
        f"`/health` p99 {health_p99:.2f} ms (probe): {health_p99 / TARGET_P99_MS:.0%} of the 2 ms target "
        f"({'met' if health_p99 <= TARGET_P99_MS else 'missed'}). It answers from the checks a "
        "side task makes every `CONVEYOR_API__HEALTH_CHECK_INTERVAL_SECONDS` (2 s) on clients it keeps (before, "
        "every call opened a Redis client, a Kafka admin client and an S3 client: 15 ms)."
    )
    body = "\n".join([*report.machine(), "", section.render()])
    print(body)
    report.replace_block(RESULTS, "health", body)


if __name__ == "__main__":
    asyncio.run(main())
