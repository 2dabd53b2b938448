"""/api/backfills: start pipelines for objects that already exist, and follow their progress.

A backfill created here is run by the reconciler, on the ingest process that leads it (``conveyor
backfill`` runs one in the foreground instead). The same parameters as an unfinished backfill resume it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, status

from conveyor.api.context import context_of
from conveyor.api.models import BackfillBody, BackfillCreate, Problem
from conveyor.db.records import SweepKind
from conveyor.ingest import backfill
from conveyor.ingest.backfill import BackfillRejected, BackfillRequest, Progress

router = APIRouter(prefix="/api", tags=["backfills"])
MAX_BIGINT = 2**63 - 1


@router.post("/backfills", status_code=status.HTTP_202_ACCEPTED, response_model=BackfillBody,
             responses={422: {"model": Problem}})  # fmt: skip
async def create_backfill(body: BackfillCreate, request: Request) -> BackfillBody:
    """Queue a backfill (or find the unfinished one with these parameters); 422 names an unknown bucket or
    pipeline."""
    context = context_of(request)
    if context.replayer is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "this process has no routing rules")
    wanted = BackfillRequest(bucket=body.bucket, prefix=body.prefix, pipeline=body.pipeline, since=body.since,
                             dry_run=body.dry_run)  # fmt: skip
    try:
        wanted = wanted.validate(context.replayer.rules, context.buckets)
    except BackfillRejected as exc:
        detail = [{"loc": ["body", exc.field], "msg": str(exc), "type": "value_error"}]
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, detail) from None
    return BackfillBody.of(Progress.of(await backfill.start(context.engine, wanted)))


@router.get("/backfills/{backfill_id}", response_model=BackfillBody, responses={404: {"model": Problem}})
async def get_backfill(backfill_id: Annotated[int, Path(ge=1, le=MAX_BIGINT)], request: Request) -> BackfillBody:
    """A backfill's progress: objects listed of the total, objects and jobs started, rate and ETA."""
    sweep = await context_of(request).engine.sweeps.get(backfill_id)
    if sweep is None or sweep.kind is not SweepKind.BACKFILL:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"backfill {backfill_id} not found")
    return BackfillBody.of(Progress.of(sweep))


@router.get("/backfills", response_model=list[BackfillBody])
async def list_backfills(
    request: Request,
    before: Annotated[int | None, Query(ge=1, le=MAX_BIGINT)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[BackfillBody]:
    """Backfills, newest first; page with ``before`` (the last id of the previous page)."""
    sweeps = await context_of(request).engine.sweeps.list(SweepKind.BACKFILL, before=before, limit=limit)
    return [BackfillBody.of(Progress.of(s)) for s in sweeps]
