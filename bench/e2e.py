"""bench/e2e: uploads through the whole system (`conveyor run`): latency at light load, sustained rate.

Light load: one small CSV every 100 ms; for each, the time from the PUT returning to its first job
RUNNING and to its whole pipeline COMPLETED (database timestamps, same machine clock). Sustained:
thousands of small uploads from 8 threads; uploads/s from the first PUT to the last pipeline completed.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from conveyor.db import events as event_queries
from conveyor.db.connection import connect
from conveyor.db.records import JobRow
from conveyor.settings import Settings
from tests.e2e.system import System, running_system

OUT = Path(__file__).parent


@dataclass(frozen=True)
class E2EFigures:
    to_running_ms: list[float]
    to_complete_ms: list[float]
    #: Upload PUT returned -> its event recorded by the ingestor (MinIO's delivery through Kafka, then ingest).
    to_recorded_ms: list[float]
    #: Event recorded by the ingestor -> first job RUNNING (conveyor's own part of the latency).
    recorded_to_running_ms: list[float]
    sustained_uploads: int
    sustained_seconds: float
    put_times: list[float]
    completion_times: list[float]

    @property
    def sustained_rate(self) -> float:
        return self.sustained_uploads / self.sustained_seconds


def percentiles(values: list[float]) -> tuple[float, float, float]:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[94], cuts[98]


def light_load(system: System, count: int) -> tuple[list[float], list[float], list[float], list[float]]:
    puts: dict[str, float] = {}
    for i in range(count):
        key = f"light/{i:04d}.csv"
        system.upload(key, b"id,v\n1,2\n")
        puts[key] = time.time()
        time.sleep(0.1)
    jobs = system.wait_until_settled(set(puts), within=120)
    first_running, complete = _per_key(jobs, puts)
    recorded = asyncio.run(_recorded_at(system, list(puts)))
    to_recorded = [(recorded[k] - puts[k]) * 1000 for k in puts]
    recorded_to_running = [r - t for r, t in zip(first_running, to_recorded, strict=True)]
    return first_running, complete, to_recorded, recorded_to_running


async def _recorded_at(system: System, keys: list[str]) -> dict[str, float]:
    """When the ingestor recorded each key's event (``object_events.received_at``)."""
    conn = await connect(system.settings.postgres)
    try:
        return {
            key: (await event_queries.for_key(conn, system.bucket, key))[0]["received_at"].timestamp() for key in keys
        }
    finally:
        await conn.close()


def _per_key(jobs: list[JobRow], puts: dict[str, float]) -> tuple[list[float], list[float]]:
    started: dict[str, float] = {}
    finished: dict[str, float] = {}
    for job in jobs:
        key = str(job.source_key)
        if key in puts and job.started_at and job.finished_at:
            started[key] = min(started.get(key, 1e18), job.started_at.timestamp())
            finished[key] = max(finished.get(key, 0.0), job.finished_at.timestamp())
    return ([(started[k] - puts[k]) * 1000 for k in puts], [(finished[k] - puts[k]) * 1000 for k in puts])


def sustained(system: System, count: int) -> tuple[float, list[float], list[float]]:
    keys = [f"load/{i:05d}.csv" for i in range(count)]
    put_times: list[float] = []

    def put(key: str) -> None:
        system.upload(key, b"id,v\n1,2\n3,4\n")
        put_times.append(time.time())

    started = time.time()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, keys))
    jobs = system.wait_until_settled(set(keys), within=600)
    done: dict[str, float] = {}
    for job in jobs:
        if str(job.source_key).startswith("load/") and job.finished_at:
            done[str(job.source_key)] = max(done.get(str(job.source_key), 0.0), job.finished_at.timestamp())
    return max(done.values()) - started, put_times, list(done.values())


def plot(figures: E2EFigures) -> list[str]:
    """Latency distributions and throughput over time, as PNGs beside RESULTS.md."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for values, label in ((figures.to_running_ms, "PUT → first job RUNNING"),
                          (figures.to_complete_ms, "PUT → pipeline COMPLETED")):  # fmt: skip
        ordered = sorted(values)
        ax.plot(ordered, [i / len(ordered) for i in range(1, len(ordered) + 1)], label=label)
    ax.set(xlabel="milliseconds", ylabel="fraction of uploads", title="End-to-end latency at light load (CDF)")
    ax.axvline(100, color="grey", linestyle=":", label="p50 target (100 ms)")
    ax.axvline(500, color="grey", linestyle="--", label="p99 target (500 ms)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(OUT / "e2e_latency.png", dpi=110)
    plt.close(fig)

    start = min(figures.put_times)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for times, label in (
        (figures.put_times, "uploads (PUT returned)"),
        (figures.completion_times, "pipelines completed"),
    ):
        per_second = Counter(int(t - start) for t in times)
        seconds = range(max(per_second) + 1)
        ax.plot(list(seconds), [per_second.get(s, 0) for s in seconds], label=label)
    ax.set(xlabel="seconds since the first upload", ylabel="per second", title="Sustained load: throughput over time")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(OUT / "e2e_throughput.png", dpi=110)
    plt.close(fig)
    return ["e2e_latency.png", "e2e_throughput.png"]


def run(settings: Settings, *, light: int = 200, load: int = 3000) -> E2EFigures:
    with tempfile.TemporaryDirectory() as tmp, running_system(settings, Path(tmp)) as system:
        time.sleep(3)  # let the autoscaled workers register and subscribe to wake-ups
        to_running, to_complete, to_recorded, recorded_to_running = light_load(system, light)
        seconds, puts, completions = sustained(system, load)
    return E2EFigures(to_running, to_complete, to_recorded, recorded_to_running, load, seconds, puts, completions)
