"""bench/flow: what flow control costs and what it buys, each beside the same run without it.

- Throughput: the engine drain (in-process claimers, like bench/engine) of no-op jobs with 16 capped,
  weighted concurrency keys, beside the same jobs with no keys and no limits, interleaved.
- Fairness: real worker processes saturated by tenant A's 20,000 jobs; tenant B then enqueues 100. B's
  wait (ready to RUNNING) with fair share (A and B keyed), beside the same run with nothing keyed.
- Rate limit: a job type limited to 50 starts/s, drained by three worker processes for a minute.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from bench.database import fresh_database
from bench.engine import SQL, drain_engine, reset
from bench.worker import start_workers, stop
from conveyor.db import connection
from conveyor.db.records import FlowLimit, FlowScope
from conveyor.pipeline.engine import Engine
from conveyor.pipeline.engine.dag import JobSpec
from conveyor.settings import Settings

BENCH_DB = "conveyor_bench_flow"
KEYS = 16
ROUNDS = 3


@dataclass(frozen=True)
class Throughput:
    """Jobs/s of each interleaved round: keyed with caps, keyed alone (fair share), and plain (off)."""

    capped: list[float]
    keyed: list[float]
    off: list[float]

    def ratio(self, rates: list[float]) -> float:
        return statistics.median(rates) / statistics.median(self.off)


@dataclass(frozen=True)
class Waits:
    """Tenant B's waits (seconds from ready to RUNNING) in one fairness run."""

    seconds: list[float]

    def percentile(self, p: float) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


@dataclass(frozen=True)
class RateRun:
    """Starts per second of a 50/s job type over a minute, and the most started in any one second."""

    limit: float
    burst: int
    started: int
    seconds: float
    busiest_second: int

    @property
    def rate(self) -> float:
        return self.started / self.seconds


@dataclass(frozen=True)
class FlowFigures:
    throughput: Throughput
    fair: Waits
    unfair: Waits
    rate: RateRun


async def _enqueue(engine: Engine, specs: list[JobSpec]) -> None:
    for start in range(0, len(specs), 5000):
        await engine.create_dag(specs[start : start + 5000])


async def throughput(engine: Engine, jobs: int = 20_000) -> Throughput:
    """Interleaved drains (4 claimers, batch 100), ``ROUNDS`` times: jobs over ``KEYS`` keys each capped
    (far above what runs: the bookkeeping costs, the cap never binds) and weighted; the same keys with no
    limit (fair share alone); no keys and no limits."""
    capped: list[float] = []
    keyed: list[float] = []
    off: list[float] = []
    for _ in range(ROUNDS):
        for variant, rates in (("capped", capped), ("keyed", keyed), ("off", off)):
            if variant == "capped":
                for k in range(KEYS):
                    await engine.flow.set(FlowLimit(scope=FlowScope.KEY, name=f"tenant-{k}", max_running=10_000,
                                                    weight=1 + k % 3))  # fmt: skip
            await _enqueue(engine, [JobSpec(job_type="noop", concurrency_key="" if variant == "off" else
                                            f"tenant-{i % KEYS}") for i in range(jobs)])  # fmt: skip
            started = time.perf_counter()
            done = await drain_engine(engine, 4, 100)
            rates.append(done / (time.perf_counter() - started))
            await reset(engine.pool)
            for k in range(KEYS if variant == "capped" else 0):
                await engine.flow.clear(FlowScope.KEY, f"tenant-{k}")
    return Throughput(capped, keyed, off)


async def fairness(settings: Settings, engine: Engine, *, keyed: bool) -> Waits:
    """Two worker processes of 16 slots busy with A's 20,000 10 ms jobs; then B's 100: B's waits."""
    a_key, b_key = ("tenant-a", "tenant-b") if keyed else ("", "")
    payload = {"params": {"seconds": 0.01}}
    await _enqueue(engine, [JobSpec(job_type="bench.sleep", payload=payload, concurrency_key=a_key)
                            for _ in range(20_000)])  # fmt: skip
    workers = start_workers(settings, 2, "bench.sleep", 16)
    try:
        await _wait_running(engine, 32)  # saturated: every slot holds one of A's jobs
        b_ids = list((await engine.create_dag([JobSpec(job_type="bench.sleep", payload=payload, concurrency_key=b_key,
                                                       name=f"b{i}") for i in range(100)])).ids.values())  # fmt: skip
        waits = await _waits_once_done(engine, b_ids)
    finally:
        stop(workers)
    await reset(engine.pool)
    return Waits(waits)


async def _wait_running(engine: Engine, count: int) -> None:
    async with engine.pool.acquire() as conn:
        while await conn.fetchval(SQL["bench_running"]) < count:  # noqa: ASYNC110 - polling the database
            await asyncio.sleep(0.05)


async def _waits_once_done(engine: Engine, ids: list[uuid.UUID]) -> list[float]:
    """Seconds from created (ready at once) to started, for each of ``ids``, once all have started."""
    async with engine.pool.acquire() as conn:
        while True:
            rows = await conn.fetch(SQL["bench_started_of"], ids)
            if all(r["started_at"] is not None for r in rows):
                return [(r["started_at"] - r["created_at"]).total_seconds() for r in rows]
            await asyncio.sleep(0.1)


async def rate_limit(settings: Settings, engine: Engine, *, limit: float = 50, seconds: float = 60) -> RateRun:
    """Three worker processes drain a type limited to ``limit``/s (burst: one second's) for ``seconds``."""
    stored = await engine.flow.set(FlowLimit(scope=FlowScope.JOB_TYPE, name="bench.noop", rate_per_second=limit))
    assert stored.burst is not None
    await _enqueue(engine, [JobSpec(job_type="bench.noop") for _ in range(int(limit * seconds * 1.5))])
    workers = start_workers(settings, 3, "bench.noop", 16)
    try:
        await asyncio.sleep(seconds + 8)
    finally:
        stop(workers)
    async with engine.pool.acquire() as conn:
        starts = [r["started_at"] for r in await conn.fetch(SQL["bench_start_times"])]
    await engine.flow.clear(FlowScope.JOB_TYPE, "bench.noop")
    await reset(engine.pool)
    # The minute measured starts 5 s after the first start (the three processes are all up by then).
    begin = min(starts) + timedelta(seconds=5)
    window = [t for t in starts if begin <= t < begin + timedelta(seconds=seconds)]
    per_second: dict[int, int] = {}
    for t in window:
        per_second[int((t - begin).total_seconds())] = per_second.get(int((t - begin).total_seconds()), 0) + 1
    return RateRun(limit, stored.burst, len(window), seconds, max(per_second.values(), default=0))


async def run(settings: Settings) -> FlowFigures:
    scoped = settings.model_copy(update={"postgres": await fresh_database(settings.postgres, BENCH_DB)})
    pool = await connection.create_pool(scoped.postgres)
    engine = Engine(pool)
    try:
        return FlowFigures(
            throughput=await throughput(engine),
            fair=await fairness(scoped, engine, keyed=True),
            unfair=await fairness(scoped, engine, keyed=False),
            rate=await rate_limit(scoped, engine),
        )
    finally:
        await pool.close()
