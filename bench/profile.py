"""``python -m bench.profile``: py-spy on the hot process of the ingest and worker benchmarks.

Writes a flamegraph of each under bench/profiles/ and, in bench/RESULTS.md's ``profiles`` block, the CPU
microseconds per event (ingest) and per job (one worker process, no-op jobs) by where they go, beside the
same figures measured the same way before issue 15's changes (the ``*-before.svg`` flamegraphs).

Ingest is profiled in the benchmark's own process (it runs the ingestor in-process); the worker is a real
``conveyor worker`` process started under py-spy. Samples are CPU samples (py-spy leaves out idle threads)
at ``RATE`` Hz, counted while the ingestor's stages, or the worker's event loop callbacks, are on the stack.
"""

from __future__ import annotations

import asyncio
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench import ingest as ingest_bench
from bench import report
from bench import worker as worker_bench
from bench.database import fresh_database
from conveyor import settings as settings_module
from conveyor.db import connection
from conveyor.pipeline.engine import Engine
from conveyor.pipeline.engine.dag import JobSpec

HERE = Path(__file__).parent
OUT = HERE / "profiles"
RESULTS = HERE / "RESULTS.md"
RATE = 250
#: The ingest benchmark's drains (each round reads the whole topic) and its light-load events.
INGEST_EVENTS = ingest_bench.ROUNDS * ingest_bench.EVENTS + ingest_bench.LIGHT_EVENTS
WORKER_JOBS = 40_000

#: (what, a frame that marks it): the first that matches a sample's stack takes it, from this list's top.
INGEST_PARTS = (
    ("JSON encoding of parameters", "dump_json"), ("asyncpg: statements", "Connection._execute"),
    ("parsing notifications", "parse_message"), ("routing", "Ingestor._route"),
    ("the pipelines an event starts", "RoutedEvent."), ("job rows and edges", "creation.py"),
    ("event and upload rows", "store_events"), ("Kafka fetch", "getmany"), ("metrics", "Ingestor._observe"),
)  # fmt: skip
WORKER_PARTS = (
    ("claim: statement and rows", "Engine.claim"), ("completion: statement", "Engine.complete_many"),
    ("running a job: task, timeout, handler, metrics", "Worker._execute"),
    ("claim loop: starting jobs", "Worker._claim_loop"), ("pool: releasing connections", "PoolConnectionHolder"),
    ("heartbeats, wake-ups, maintenance", "Supervisor._keep_running"),
    ("socket reads (asyncpg protocol)", "_read_ready"),
)  # fmt: skip

#: Measured with this module's method on the code before issue 15's changes (commit 40885a2, installed in a
#: virtualenv of its own), 2026-12-04, on the machine named in this block with PostgreSQL durable as
#: `make bench` runs it: microseconds per event or job by part.
BEFORE = {
    "ingest": {"JSON encoding of parameters": 35.0, "asyncpg: statements": 7.0, "parsing notifications": 35.8,
               "routing": 8.6, "the pipelines an event starts": 28.1, "job rows and edges": 36.3,
               "event and upload rows": 32.0, "Kafka fetch": 4.4, "metrics": 3.3, "other": 9.6},
    "worker": {"claim: statement and rows": 37.0, "completion: statement": 26.5,
               "running a job: task, timeout, handler, metrics": 11.6, "claim loop: starting jobs": 19.3,
               "pool: releasing connections": 11.7, "heartbeats, wake-ups, maintenance": 4.0,
               "socket reads (asyncpg protocol)": 19.3, "other": 4.2},
}  # fmt: skip


@dataclass(frozen=True)
class Profile:
    """CPU microseconds per unit by part (and "other"), from py-spy's raw (collapsed) samples."""

    parts: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.parts.values())

    @classmethod
    def read(cls, raw: Path, marker: str, parts: tuple[tuple[str, str], ...], units: int) -> Profile:
        counted: collections.Counter[str] = collections.Counter()
        for line in raw.read_text().splitlines():
            stack, _, samples = line.rpartition(" ")
            if marker in stack:
                counted[next((name for name, frame in parts if frame in stack), "other")] += int(samples)
        names = [name for name, _ in parts] + ["other"]
        return cls({name: counted[name] / RATE / units * 1e6 for name in names})


def py_spy(argv: list[str], out: Path, fmt: str) -> None:
    command = [_py_spy(), "record", "-r", str(RATE), "-f", fmt, "-o", str(out), "--", *argv]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if fmt == "flamegraph":
        scrub(out)


def scrub(svg: Path) -> None:
    """Keep this machine's paths out of a committed flamegraph: py-spy writes its command line as the title."""
    text = re.sub(r"(?<![^\s>])(?:/[^\s\"<>/]+)+/(py-spy|python[0-9.]*)\b", r"\1", svg.read_text())
    svg.write_text(re.sub(r"-o (?:/[^\s\"<>/]+)+/([^\s\"<>/]+\.svg)", r"-o bench/profiles/\1", text))


def profile_ingest(tmp: Path) -> Profile:
    argv = [sys.executable, "-m", "bench", "ingest"]
    py_spy(argv, OUT / "ingest-after.svg", "flamegraph")
    py_spy(argv, tmp / "ingest.txt", "raw")
    return Profile.read(tmp / "ingest.txt", "Ingestor.", INGEST_PARTS, INGEST_EVENTS)


async def profile_worker(settings: settings_module.Settings, tmp: Path) -> Profile:
    for fmt, out in (("flamegraph", OUT / "worker-after.svg"), ("raw", tmp / "worker.txt")):
        scoped = settings.model_copy(update={"postgres": await fresh_database(settings.postgres, "conveyor_profile")})
        pool = await connection.create_pool(scoped.postgres)
        try:
            engine = Engine(pool)
            for _ in range(0, WORKER_JOBS, 5000):
                await engine.create_dag([JobSpec(job_type="bench.noop") for _ in range(5000)])
            process = _worker_under_py_spy(scoped, fmt, out)
            try:
                while await worker_bench.completed(engine) < WORKER_JOBS:  # noqa: ASYNC110 - polling the database
                    await asyncio.sleep(0.1)
            finally:
                process.send_signal(2)  # py-spy writes its output and stops the worker
                process.wait(60)
            if fmt == "flamegraph":
                scrub(out)
        finally:
            await pool.close()
    return Profile.read(tmp / "worker.txt", "Handle._run", WORKER_PARTS, WORKER_JOBS)


def _worker_under_py_spy(settings: settings_module.Settings, fmt: str, out: Path) -> subprocess.Popen[bytes]:
    """One worker process (16 slots) for the bench's no-op jobs, started under py-spy."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(CONVEYOR_POSTGRES__DATABASE=settings.postgres.database, CONVEYOR_METRICS__PORT="0",
               CONVEYOR_WORKER__HANDLER_MODULES='["bench.noop_handlers"]',
               PYTHONPATH=str(worker_bench.ROOT))  # fmt: skip
    argv = [_py_spy(), "record", "-r", str(RATE), "-f", fmt, "-o", str(out), "--", sys.executable, "-m", "conveyor",
            "worker", "--job-types", "bench.noop", "--concurrency", "16"]  # fmt: skip
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _py_spy() -> str:
    """py-spy from this environment (a dev dependency), else from PATH."""
    return shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"


def table(name: str, after: Profile, unit: str) -> list[list[str]]:
    before = BEFORE[name]
    rows = []
    for part, microseconds in after.parts.items():
        was = before.get(part)
        rows.append([part, f"{was:.1f}" if was is not None else "-", f"{microseconds:.1f}"])
    total_before = sum(before.values())
    rows.append([f"**CPU per {unit}**", f"**{total_before:.1f}**" if before else "-", f"**{after.total:.1f}**"])
    return rows


async def main() -> None:
    settings = settings_module.load()
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        ingest = await asyncio.to_thread(profile_ingest, Path(tmp))
        worker = await profile_worker(settings, Path(tmp))
    section = report.Section("Profiles: where the CPU microseconds go", "python -m bench.profile")
    section.text(
        f"py-spy at {RATE} Hz. Ingest: the ingest benchmark's process ({ingest_bench.ROUNDS} drains of "
        f"{ingest_bench.EVENTS:,} events and its light load), samples with the ingestor's stages on the stack, "
        "per event. Worker: one `conveyor worker` process "
        f"(16 slots) draining {WORKER_JOBS:,} no-op jobs, samples of its event loop's callbacks, per job. Before: "
        "the same method on the code before issue 15 (commit 40885a2). Flamegraphs: bench/profiles/."
    )
    section.table(["ingest: part", "µs per event before", "µs per event now"], table("ingest", ingest, "event"))
    section.table(["worker: part", "µs per job before", "µs per job now"], table("worker", worker, "job"))
    body = "\n".join([*report.machine(), "", section.render()])
    print(body)
    report.replace_block(RESULTS, "profiles", body)


if __name__ == "__main__":
    asyncio.run(main())
