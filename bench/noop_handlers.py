"""``bench.noop`` (does nothing) and ``bench.sleep`` (waits ``params.seconds``, holding its slot like a
handler waiting on an outside service): loaded by benchmark workers via ``handler_modules``."""

from __future__ import annotations

import asyncio
from typing import Any

from conveyor.pipeline.handlers.base import HandlerRegistry, JobContext


async def noop(ctx: JobContext) -> dict[str, Any]:
    return {}


async def sleep(ctx: JobContext) -> dict[str, Any]:
    await asyncio.sleep(float(ctx.params.get("seconds", 0.01)))
    return {}


def register(registry: HandlerRegistry) -> None:
    registry.register("bench.noop", noop)
    registry.register("bench.sleep", sleep)
