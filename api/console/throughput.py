"""The last hour of traffic, minute by minute, for the overview's charts.

A minute that has passed does not change, so it is read once and kept: each refresh reads only the
minutes not yet kept and the current one, however many consoles are open. The API keeps it warm in the
background (``run``), so no page waits for the first read of a whole busy hour.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI

from conveyor.db.records import MinuteCounts
from conveyor.pipeline.engine import Engine
from conveyor.pipeline.lifecycle.periodic import every

WINDOW = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Throughput:
    """Uploads received, jobs finished and jobs failed per minute over the last hour."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = _utc_now) -> None:
        self._engine, self._clock = engine, clock
        self._kept: dict[datetime, MinuteCounts] = {}
        self._lock = asyncio.Lock()

    async def last_hour(self) -> list[MinuteCounts]:
        """Sixty minutes, oldest first, the current (partial) one last; a minute without traffic counts zero."""
        async with self._lock:
            now = self._clock()
            current = now.replace(second=0, microsecond=0)
            minutes = [current - MINUTE * back for back in range(59, -1, -1)]
            self._kept = {m: c for m, c in self._kept.items() if m >= minutes[0]}
            missing = next((m for m in minutes if m not in self._kept), current)
            fresh = {c.minute: c for c in await self._engine.browse.throughput(missing)}
            for minute in minutes[:-1]:
                if minute >= missing:
                    self._kept[minute] = fresh.get(minute, MinuteCounts(minute, 0, 0, 0))
            latest = fresh.get(current, MinuteCounts(current, 0, 0, 0))
            return [self._kept[m] for m in minutes[:-1]] + [latest]

    async def run_once(self) -> None:
        """Read the minutes not yet kept and the current one."""
        await self.last_hour()

    async def run(self, stop: asyncio.Event, interval_seconds: float) -> None:
        await every(interval_seconds, self.run_once, stop, name="console throughput", jitter=0.1)


def console_throughput(app: FastAPI) -> Throughput:
    """The overview's traffic history of ``app`` (``install`` puts it there; the API keeps it warm)."""
    throughput: Throughput = app.state.console_throughput
    return throughput
