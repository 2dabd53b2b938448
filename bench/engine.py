"""bench/engine: no-op jobs per second through create -> claim -> complete, beside the bare-loop ceiling.

Each drain run enqueues ``jobs`` no-op jobs, then ``claimers`` asyncio tasks (one connection each) claim
and complete them until the queue is empty. The same is done by a bare asyncpg loop with no framework,
on the same table and server, in the same run.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bench.database import fresh_database
from conveyor.db import connection
from conveyor.db.settings import PostgresSettings
from conveyor.db.sql import parse
from conveyor.pipeline.engine import Engine
from conveyor.pipeline.engine.dag import JobSpec
from conveyor.pipeline.engine.ids import uuid7

BENCH_DB = "conveyor_bench"
SQL = parse((Path(__file__).parent / "bare.sql").read_text(), origin="bench/bare.sql")
ENQUEUE_BATCH = 5_000
#: Bulk enqueue and the bare COPY take turns this many times; the report takes each one's median. A single
#: round of each varied by a fifth from run to run (the first one in a fresh database ran slowest), and on
#: one machine within an hour by a third: the median of three then swung from 61% to 75% of the COPY.
ENQUEUE_ROUNDS = 5


@dataclass(frozen=True)
class Figure:
    name: str
    claimers: int
    batch: int
    jobs: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds


@dataclass(frozen=True)
class EngineFigures:
    durability: dict[str, str]
    #: One figure per round, conveyor's and the bare COPY's interleaved (see ``ENQUEUE_ROUNDS``).
    enqueue: list[Figure]
    #: Of each enqueue round's seconds, those spent building the specs (the caller's part).
    enqueue_building: list[float]
    bare_copy: list[Figure]
    drain: list[Figure]


async def durability(settings: PostgresSettings) -> dict[str, str]:
    conn = await connection.connect(settings)
    try:
        return dict(await conn.fetchrow(SQL["bench_durability"]) or {})
    finally:
        await conn.close()


@dataclass(frozen=True)
class Enqueued:
    """One bulk enqueue: its seconds, and of those the seconds the caller spent building the specs."""

    seconds: float
    building_seconds: float


async def enqueue(engine: Engine, jobs: int) -> float:
    """Seconds to create ``jobs`` no-op jobs in bulk DAG transactions of ``ENQUEUE_BATCH``."""
    return (await enqueue_split(engine, jobs)).seconds


async def enqueue_split(engine: Engine, jobs: int) -> Enqueued:
    """:func:`enqueue`, with the specs' share of its time apart (the rest is ``create_dag``'s)."""
    started, building = time.perf_counter(), 0.0
    for start in range(0, jobs, ENQUEUE_BATCH):
        count = min(ENQUEUE_BATCH, jobs - start)
        built = time.perf_counter()
        specs = [JobSpec(job_type="noop", payload={"n": start + i}) for i in range(count)]
        building += time.perf_counter() - built
        await engine.create_dag(specs)
    return Enqueued(time.perf_counter() - started, building)


async def bare_copy(pool: asyncpg.Pool, jobs: int) -> float:
    """Seconds for a bare asyncpg loop to COPY the rows :func:`enqueue` creates (built before timing), in
    transactions of ``ENQUEUE_BATCH``: the limit bulk enqueue is measured against."""
    columns = ("id", "job_type", "payload", "status", "priority", "max_retries", "timeout_ms", "pending_parents",
               "concurrency_key")  # fmt: skip
    rows = [(uuid7(), "noop", {"n": n}, "PENDING", 0, 3, 300_000, 0, "") for n in range(jobs)]
    async with pool.acquire() as conn:
        started = time.perf_counter()
        for start in range(0, jobs, ENQUEUE_BATCH):
            async with conn.transaction():
                await conn.copy_records_to_table("job_rows", records=rows[start : start + ENQUEUE_BATCH],
                                                 columns=columns)  # fmt: skip
        return time.perf_counter() - started


async def drain_engine(engine: Engine, claimers: int, batch: int) -> int:
    async def claimer() -> int:
        worker, done = uuid.uuid4(), 0
        while jobs := await engine.claim(worker, job_types=["noop"], limit=batch):
            done += len(await engine.complete_many([(job, None) for job in jobs]))
        return done

    return sum(await asyncio.gather(*(claimer() for _ in range(claimers))))


async def drain_bare(pool: asyncpg.Pool, claimers: int, batch: int) -> int:
    async def claimer() -> int:
        worker, done = uuid.uuid4(), 0
        async with pool.acquire() as conn:
            while rows := await conn.fetch(SQL["bare_claim"], worker, batch):
                await conn.execute(SQL["bare_complete"], [r["id"] for r in rows], [r["attempts"] for r in rows])
                done += len(rows)
        return done

    return sum(await asyncio.gather(*(claimer() for _ in range(claimers))))


async def reset(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await conn.execute(SQL["bench_reset"])


async def run(settings: PostgresSettings, *, jobs: int = 20_000, enqueue_jobs: int = 50_000) -> EngineFigures:
    """All engine figures: enqueue rate, and drain rates for conveyor and the bare loop."""
    bench = await fresh_database(settings, BENCH_DB)
    pool = await connection.create_pool(bench)
    engine = Engine(pool)
    figures: list[Figure] = []
    try:
        enqueued, building, copied = [], [], []
        for _ in range(ENQUEUE_ROUNDS):
            split = await enqueue_split(engine, enqueue_jobs)
            enqueued.append(Figure("conveyor-enqueue", 1, ENQUEUE_BATCH, enqueue_jobs, split.seconds))
            building.append(split.building_seconds)
            await reset(pool)
            seconds = await bare_copy(pool, enqueue_jobs)
            copied.append(Figure("bare-copy", 1, ENQUEUE_BATCH, enqueue_jobs, seconds))
            await reset(pool)
        for claimers, batch in ((1, 1), (1, 100), (4, 100), (16, 100)):
            for name in ("bare", "conveyor"):
                await enqueue(engine, jobs)
                started = time.perf_counter()
                done = await (
                    drain_bare(pool, claimers, batch) if name == "bare" else drain_engine(engine, claimers, batch)
                )
                figures.append(Figure(name, claimers, batch, done, time.perf_counter() - started))
                await reset(pool)
        return EngineFigures(
            durability=await durability(bench),
            enqueue=enqueued,
            enqueue_building=building,
            bare_copy=copied,
            drain=figures,
        )
    finally:
        await pool.close()
