"""The one periodic loop every background job uses: ``run_once()`` on an interval until told to stop.

Each loop keeps its logic in a ``run_once()`` that tests call directly; its ``run(stop)`` is one call
to :func:`every`. A backing service being unavailable is expected (logged, tried again next tick);
anything else propagates to the task's supervisor, which logs the traceback, counts it and restarts.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from conveyor.db.errors import ServiceUnavailable
from conveyor.pipeline.lifecycle.waiting import wait_for_event

log = logging.getLogger(__name__)

T = TypeVar("T")


def never(_: object) -> bool:
    return False


async def every(
    interval_seconds: float,
    run_once: Callable[[], Awaitable[T]],
    stop: asyncio.Event,
    *,
    name: str,
    jitter: float = 0.0,
    again_now: Callable[[T], bool] = never,
) -> None:
    """Call ``run_once()`` every ``interval_seconds`` (± ``jitter`` as a fraction) until ``stop`` is set.

    ``again_now(result)`` true (a full batch: there may be more right away) runs it again without waiting.
    Jitter keeps the loops of many processes from running in lockstep.
    """
    while not stop.is_set():
        try:
            result = await run_once()
        except ServiceUnavailable as exc:
            log.warning("%s: %s; trying again in %.1fs", name, exc, interval_seconds)
        else:
            if again_now(result):
                continue
        await wait_for_event(stop, interval_seconds * random.uniform(1 - jitter, 1 + jitter))
