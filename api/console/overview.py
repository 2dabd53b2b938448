"""The overview: traffic, queue depth, workers, dead letters and reconciliation, refreshed live."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from conveyor.api.console.auth import viewer
from conveyor.api.console.charts import Bar, Sparkline, bars, sparkline
from conveyor.api.console.rendering import render
from conveyor.api.console.session import Session
from conveyor.api.console.throughput import console_throughput
from conveyor.api.context import context_of
from conveyor.db.records import Depth, JobStatus, MinuteCounts

router = APIRouter(prefix="/ui")
LIVE_STATUSES = (JobStatus.BLOCKED, JobStatus.PENDING, JobStatus.RUNNING)


@dataclass(frozen=True)
class Overview:
    """What the overview shows, read at ``read_at``."""

    read_at: datetime
    minutes: list[MinuteCounts]
    depth: list[Depth]
    workers_alive: int
    stalest_heartbeat_seconds: float
    open_dead_letters: int
    swept_missing: int

    def per_second(self, field: str) -> float:
        """The rate over the last whole minute."""
        last_whole: MinuteCounts = self.minutes[-2]
        rate: float = getattr(last_whole, field) / 60
        return rate

    def series(self, field: str) -> Sparkline:
        return sparkline([float(getattr(m, field)) for m in self.minutes])

    def by_status(self) -> list[Bar]:
        counts = Counter({status.value: 0 for status in LIVE_STATUSES})
        for d in self.depth:
            counts[d.status.value] += d.jobs
        return bars(dict(counts))

    def oldest_ready_seconds(self) -> float | None:
        ages = [d.oldest_ready_seconds for d in self.depth if d.oldest_ready_seconds is not None]
        return max(ages, default=None)

    def by_type(self) -> list[tuple[str, dict[str, int]]]:
        table: dict[str, dict[str, int]] = {}
        for d in self.depth:
            table.setdefault(d.job_type, dict.fromkeys((s.value for s in LIVE_STATUSES), 0))[d.status.value] = d.jobs
        return sorted(table.items())


async def read_overview(request: Request) -> Overview:
    """Every figure of the overview, read concurrently."""
    engine = context_of(request).engine
    since = datetime.now(UTC) - timedelta(hours=24)
    minutes, depth, liveness, letters, missing = await asyncio.gather(
        console_throughput(request.app).last_hour(), engine.stats.depth(), engine.workers.liveness(),
        engine.objects.open_dead_letters(), engine.browse.swept_missing(since),
    )  # fmt: skip
    return Overview(datetime.now(UTC), minutes, depth, liveness.alive, liveness.stalest_heartbeat_seconds, letters,
                    missing)  # fmt: skip


@router.get("")
async def home() -> Response:
    return RedirectResponse("/ui/overview", status_code=303)


@router.get("/overview")
async def overview(request: Request, session: Annotated[Session, Depends(viewer)], fragment: bool = False) -> Response:
    """The overview page; ``fragment`` renders only its live part (the page's script polls it)."""
    template = "overview_live.html" if fragment else "overview.html"
    return render(request, template, page="overview", view=await read_overview(request))
