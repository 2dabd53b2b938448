"""Handlers for tests, loaded by workers through ``CONVEYOR_WORKER__HANDLER_MODULES=tests.support.handlers``.

Each run appends one line to ``params["log"]`` (``job id, attempt, pid, event, time``), so a test can prove
how many times every job actually executed, across processes, and when.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from conveyor.pipeline.handlers.base import HandlerRegistry, JobContext, PermanentFailure, RetryLater
from conveyor.pipeline.handlers.textfile import Lines


def _record(ctx: JobContext, event: str) -> None:
    path = ctx.params.get("log")
    if path:
        line = f"{ctx.job.id} {ctx.job.attempts} {os.getpid()} {event} {time.time():.3f}\n"
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


async def flaky(ctx: JobContext) -> dict[str, Any]:
    """Raises until attempt ``succeed_on``."""
    _record(ctx, "start")
    if ctx.job.attempts < int(ctx.params.get("succeed_on", 3)):
        raise RuntimeError(f"flaky failure on attempt {ctx.job.attempts}")
    _record(ctx, "done")
    return {"attempt": ctx.job.attempts}


async def later(ctx: JobContext) -> dict[str, Any]:
    """Snoozes itself once (RetryLater, no attempt spent), remembering so in a checkpoint; then succeeds."""
    _record(ctx, "start")
    if not await ctx.last_checkpoint():
        await ctx.checkpoint({"snoozed": True})
        raise RetryLater(float(ctx.params.get("delay", 1.0)), "the thing it needs is not ready yet")
    _record(ctx, "done")
    return {"snoozed_once": True}


async def permanent(ctx: JobContext) -> dict[str, Any]:
    _record(ctx, "start")
    raise PermanentFailure("this input can never work")


async def slow_lines(ctx: JobContext) -> dict[str, Any]:
    """Counts the source object's lines, ``delay`` seconds each, checkpointing every ``every`` lines."""
    _record(ctx, "start")
    state = await ctx.last_checkpoint() or {"offset": 0, "line": 0}
    resumed_from, delay, every = state["offset"], float(ctx.params.get("delay", 0.1)), int(ctx.params.get("every", 5))

    def count() -> int:
        lines = Lines(ctx, state["offset"], state["line"])
        try:
            for _ in lines:
                ctx.check_cancelled()
                time.sleep(delay)
                if lines.line_number % every == 0:
                    ctx.checkpoint_from_thread({"offset": lines.offset, "line": lines.line_number})
            return lines.line_number
        finally:
            lines.close()

    total = await ctx.in_thread(count)
    _record(ctx, "done")
    return {"lines": total, "resumed_from_byte": resumed_from}


def register(registry: HandlerRegistry) -> None:
    registry.register("test.noop", noop)
    registry.register("test.sleep", sleep)
    registry.register("test.poison", poison)
    registry.register("test.sleep_first", sleep_first)
    registry.register("test.flaky", flaky)
    registry.register("test.later", later)
    registry.register("test.permanent", permanent)
    registry.register("test.slow_lines", slow_lines)
