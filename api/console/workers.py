"""Workers: each process with its host, pid, heartbeat age, busy slots and the jobs it runs now."""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from conveyor.api.console.auth import viewer
from conveyor.api.console.rendering import render
from conveyor.api.console.session import Session
from conveyor.api.context import context_of
from conveyor.db.records import JobBrief

router = APIRouter(prefix="/ui")


@router.get("/workers")
async def workers_page(request: Request, session: Annotated[Session, Depends(viewer)], stopped: bool = False,
                       fragment: bool = False) -> Response:  # fmt: skip
    """Live workers first (with ``stopped``, also those that stopped or were lost), refreshed live."""
    engine = context_of(request).engine
    workers = await engine.workers.all(include_stopped=stopped)
    running: dict[object, list[JobBrief]] = defaultdict(list)
    for job in await engine.browse.running_on([w.id for w in workers if w.status.is_live]):
        running[job.worker_id].append(job)
    template = "workers_live.html" if fragment else "workers.html"
    return render(request, template, page="workers", workers=workers, running=running, stopped=stopped)
