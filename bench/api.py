"""bench/api: the HTTP API's seed verbs (``POST /api/jobs``; acquire then complete) through `conveyor api`,
beside a bare uvicorn endpoint doing the same single statement per request (bench/bare_api.py), in one run.

The load is driven by raw HTTP/1.1 keep-alive connections (a few lines of asyncio, no HTTP client library),
so the client's own cost is as small as it can be and the same for both servers. Both servers run at once,
and each row is measured ``ROUNDS`` times, conveyor's then the bare endpoint's in turn: measured one
server after the other, the same code's ratio moved between 44% and 70% from one run to the next.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson

from bench import cpu
from bench.database import drop_database, fresh_database
from bench.worker import ROOT
from conveyor.api.settings import ApiSettings
from conveyor.db import connection
from conveyor.pipeline.engine import Engine
from conveyor.pipeline.engine.dag import JobSpec
from conveyor.settings import Settings
from tests.conftest import stack_status
from tests.integration.api_server import TOKEN, api_server, free_port

#: Concurrent clients of each run, and requests (or acquire-complete pairs) per run.
CLIENTS = (1, 8)
REQUESTS = 3_000
ROUNDS = 3
WARM_UP = {"create": 200, "acquire+complete": 100}


#: The roles whose CPU each run reads (bench/cpu.py): the server under test, and PostgreSQL (every backend).
SERVER, POSTGRES = "server", "PostgreSQL"


@dataclass(frozen=True)
class Run:
    clients: int
    seconds: float
    latencies_ms: list[float]
    #: CPU seconds of the run by role (``SERVER``, ``POSTGRES``).
    cpu_seconds: dict[str, float]

    def cpu_ms(self, role: str) -> float:
        """CPU milliseconds per request (or pair) of ``role``."""
        return self.cpu_seconds[role] / len(self.latencies_ms) * 1000

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


@dataclass(frozen=True)
class ApiFigures:
    #: (what, server) -> per client count, one run per round: what is "create" or "acquire+complete", server
    #: "conveyor" or "bare".
    runs: dict[tuple[str, str], list[list[Run]]]


def median_run(rounds: list[Run]) -> Run:
    """The round of median rate (its latencies go with it)."""
    return sorted(rounds, key=lambda run: run.rate)[len(rounds) // 2]


@dataclass(frozen=True)
class Server:
    """A server under test and how to drive it."""

    url: str
    headers: bytes
    operations: dict[str, Operation]
    #: The server's process, whose CPU each run reads.
    pid: int


class Connection:
    """One kept-alive HTTP/1.1 connection: ``post(path, body)`` -> (status, body)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, headers: bytes) -> None:
        self.reader, self.writer, self.headers = reader, writer, headers

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        self.writer.write(b"POST %s HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n%sContent-Length: %d"
                          b"\r\n\r\n%s" % (path.encode(), self.headers, len(body), body))  # fmt: skip
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length) if length else b""


Operation = Callable[[Connection, int], Awaitable[None]]


async def drive(server: Server, what: str, clients: int, count: int) -> Run:
    """``count`` operations ``what`` from ``clients`` connections at once; each one's milliseconds, and the CPU
    the server's process and PostgreSQL spent meanwhile."""
    where, operation = urlsplit(server.url), server.operations[what]
    numbers = itertools.count()
    latencies: list[float] = []

    async def client() -> None:
        reader, writer = await asyncio.open_connection(where.hostname, where.port)
        conn = Connection(reader, writer, server.headers)
        try:
            while (n := next(numbers)) < count:
                started = time.perf_counter()
                await operation(conn, n)
                latencies.append((time.perf_counter() - started) * 1000)
        finally:
            writer.close()

    tracker = cpu.Tracker({POSTGRES: stack_status()["postgres"]["pid"]}, {SERVER: server.pid})
    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    seconds, spent = time.perf_counter() - started, tracker.spent()
    return Run(clients, seconds, latencies, {role: spent[role] for role in (SERVER, POSTGRES)})


async def conveyor_create(conn: Connection, n: int) -> None:
    status, _ = await conn.post("/api/jobs", b'{"jobType":"bench.noop","payload":{"n":%d}}' % n)
    assert status == 201, status


async def bare_create(conn: Connection, n: int) -> None:
    status, _ = await conn.post("/jobs", b'{"jobType":"bench.noop","payload":{"n":%d}}' % n)
    assert status == 201, status


WORKER = uuid.uuid4()
ACQUIRE = orjson.dumps({"workerId": WORKER, "jobTypes": ["bench.noop"], "timeoutSeconds": 0})
COMPLETE = orjson.dumps({"workerId": WORKER, "result": {}})


async def conveyor_cycle(conn: Connection, n: int) -> None:
    status, body = await conn.post("/api/jobs/acquire", ACQUIRE)
    assert status == 200, status
    status, _ = await conn.post(f"/api/jobs/{orjson.loads(body)['jobId']}/complete", COMPLETE)
    assert status == 200, status


async def bare_cycle(conn: Connection, n: int) -> None:
    status, body = await conn.post("/acquire", b"{}")
    assert status == 200, status
    job = orjson.loads(body)
    status, _ = await conn.post(f"/complete/{job['id']}/{job['attempts']}", b"{}")
    assert status == 200, status


@contextmanager
def bare_server(settings: Settings, database: str) -> Iterator[tuple[str, int]]:
    """The bare endpoint on ``database``: its URL and process id."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(BENCH_DSN=settings.postgres.dsn(database), PYTHONPATH=str(ROOT))
    argv = [sys.executable, "-m", "uvicorn", "bench.bare_api:app", "--port", str(port), "--log-level", "warning",
            "--no-access-log"]  # fmt: skip
    process = subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL)
    try:
        _wait_listening(port, process)
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        process.terminate()
        process.wait(30)


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the bare endpoint exited during start-up")
        try:
            with __import__("socket").create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the bare endpoint did not listen in 30 s")


async def enqueue(settings: Settings, database: str, jobs: int) -> None:
    """``jobs`` ready no-op jobs for the acquire-complete runs."""
    pool = await connection.create_pool(settings.postgres.model_copy(update={"database": database}))
    try:
        engine = Engine(pool)
        for start in range(0, jobs, 5000):
            await engine.create_dag([JobSpec(job_type="bench.noop") for _ in range(min(5000, jobs - start))])
    finally:
        await pool.close()


async def measure(servers: dict[str, Server], what: str) -> dict[str, list[list[Run]]]:
    """Each client count: a warm-up on each server, then ``ROUNDS`` runs of ``what`` on each, in turn."""
    runs: dict[str, list[list[Run]]] = {name: [] for name in servers}
    for clients in CLIENTS:
        for name, server in servers.items():
            await drive(server, what, clients, WARM_UP[what])
            runs[name].append([])
        for _ in range(ROUNDS):
            for name, server in servers.items():
                runs[name][-1].append(await drive(server, what, clients, REQUESTS))
    return runs


async def run(settings: Settings) -> ApiFigures:
    names = {
        "conveyor": f"conveyor_bench_api_{uuid.uuid4().hex[:6]}",
        "bare": f"conveyor_bench_bare_{uuid.uuid4().hex[:6]}",
    }
    for database in names.values():
        await fresh_database(settings.postgres, database)
    try:
        # The tests' API refreshes its cluster gauges every 0.5 s; measure the interval users run.
        default_interval = str(ApiSettings().cluster_metrics_interval_seconds)
        with (
            api_server(names["conveyor"], CONVEYOR_API__CLUSTER_METRICS_INTERVAL_SECONDS=default_interval) as api,
            bare_server(settings, names["bare"]) as (bare_url, bare_pid),
        ):
            servers = {
                "conveyor": Server(api.url, b"Authorization: Bearer %s\r\n" % TOKEN.encode(),
                                   {"create": conveyor_create, "acquire+complete": conveyor_cycle}, api.process.pid),
                "bare": Server(bare_url, b"", {"create": bare_create, "acquire+complete": bare_cycle}, bare_pid),
            }  # fmt: skip
            figures = {("create", name): runs for name, runs in (await measure(servers, "create")).items()}
            cycles = (REQUESTS * ROUNDS + WARM_UP["acquire+complete"]) * len(CLIENTS)
            for database in names.values():
                await enqueue(settings, database, cycles)
            found = await measure(servers, "acquire+complete")
            figures |= {("acquire+complete", name): runs for name, runs in found.items()}
    finally:
        for database in names.values():
            await drop_database(settings.postgres, database)
    return ApiFigures(figures)


def median_ms(run: Run) -> float:
    return statistics.median(run.latencies_ms)
