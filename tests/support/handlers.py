"""Handlers for tests, loaded by workers through ``CONVEYOR_WORKER__HANDLER_MODULES=tests.support.handlers``.

Each run appends one line to ``params["log"]`` (``job id, attempt, pid``), so a test can prove how many
times every job actually executed, across processes.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from conveyor.pipeline.handlers.base import HandlerRegistry, JobContext


def _record(ctx: JobContext, event: str) -> None:
    path = ctx.params.get("log")
    if path:
        line = f"{ctx.job.id} {ctx.job.attempts} {os.getpid()} {event}\n"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())  # one small O_APPEND write: atomic across processes
        finally:
            os.close(fd)


async def noop(ctx: JobContext) -> dict[str, Any]:
    _record(ctx, "done")
    return {"ok": True}


async def sleep(ctx: JobContext) -> dict[str, Any]:
    _record(ctx, "start")
    await asyncio.sleep(float(ctx.params.get("seconds", 1)))
    _record(ctx, "done")
    return {"slept": ctx.params.get("seconds", 1)}


async def sleep_first(ctx: JobContext) -> dict[str, Any]:
    """Sleeps ``first_seconds`` on its first attempt (long enough to be killed in), ``seconds`` after."""
    _record(ctx, "start")
    seconds = ctx.params.get("first_seconds", 3600) if ctx.job.attempts == 1 else ctx.params.get("seconds", 0)
    await asyncio.sleep(float(seconds))
    _record(ctx, "done")
    return {"attempt": ctx.job.attempts}


async def poison(ctx: JobContext) -> dict[str, Any]:
    """A result PostgreSQL's jsonb refuses: a key and a value holding NUL (as a CSV header with NUL gives)."""
    _record(ctx, "done")
    return {"header": ["id", "na\x00me"], "nulls": {"na\x00me": 0}}


def register(registry: HandlerRegistry) -> None:
    registry.register("test.noop", noop)
    registry.register("test.sleep", sleep)
    registry.register("test.poison", poison)
    registry.register("test.sleep_first", sleep_first)
