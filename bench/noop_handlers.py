"""``bench.noop``: a handler that does nothing, loaded by benchmark workers via ``handler_modules``."""

from __future__ import annotations

from typing import Any

from conveyor.pipeline.handlers.base import HandlerRegistry, JobContext


async def noop(ctx: JobContext) -> dict[str, Any]:
    return {}


def register(registry: HandlerRegistry) -> None:
    registry.register("bench.noop", noop)
