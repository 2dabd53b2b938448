"""Backfills: start pipelines for objects already in a bucket, and follow each one's progress live."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import RedirectResponse, Response

from conveyor.api.console.auth import Action, Refused, operator, viewer
from conveyor.api.console.rendering import render
from conveyor.api.console.session import Session
from conveyor.api.context import context_of
from conveyor.db.records import SweepKind
from conveyor.ingest import backfill
from conveyor.ingest.backfill import BackfillRejected, BackfillRequest, Progress

router = APIRouter(prefix="/ui")
PAGE_SIZE = 50
MAX_BIGINT = 2**63 - 1


async def _page(request: Request, *, before: int | None = None, started: int | None = None,
                problem: str | None = None, form: dict[str, str] | None = None, status_code: int = 200,
                fragment: bool = False) -> Response:  # fmt: skip
    context = context_of(request)
    sweeps = await context.engine.sweeps.list(SweepKind.BACKFILL, before=before, limit=PAGE_SIZE + 1)
    progress = [Progress.of(s) for s in sweeps[:PAGE_SIZE]]
    pipelines = [p.name for p in context.replayer.rules.pipeline] if context.replayer else []
    values: dict[str, Any] = {
        "page": "backfills", "backfills": progress, "more": len(sweeps) > PAGE_SIZE, "started": started,
        "problem": problem, "form": form or {}, "buckets": context.buckets, "pipelines": pipelines,
        "can_start": context.replayer is not None, "settled": all(p.sweep.status.is_final for p in progress),
    }  # fmt: skip
    return render(request, "backfills_live.html" if fragment else "backfills.html", status_code=status_code, **values)


@router.get("/backfills")
async def backfills_page(
    request: Request,
    session: Annotated[Session, Depends(viewer)],
    before: Annotated[int | None, Query(ge=1, le=MAX_BIGINT)] = None,
    started: Annotated[int | None, Query(ge=1, le=MAX_BIGINT)] = None,
    fragment: bool = False,
) -> Response:
    """Backfills newest first, each with objects listed of the total, objects and jobs started, rate and ETA."""
    return await _page(request, before=before, started=started, fragment=fragment)


@router.post("/backfills")
async def start_backfill(request: Request, action: Annotated[Action, Depends(operator)]) -> Response:
    """Queue a backfill (or resume the unfinished one with the same parameters); the ingest leader runs it."""
    context = context_of(request)
    if context.replayer is None:
        raise Refused(status.HTTP_503_SERVICE_UNAVAILABLE, "This process has no routing rules to backfill with.")
    form = {name: action.form.first(name) or "" for name in ("bucket", "prefix", "pipeline", "since", "dry_run")}
    try:
        wanted = _request_of(form).validate(context.replayer.rules, context.buckets)
    except BackfillRejected as exc:
        return await _page(request, problem=f"{exc.field}: {exc}", form=form, status_code=422)
    sweep = await backfill.start(context.engine, wanted)
    return RedirectResponse(f"/ui/backfills?started={sweep.id}", status_code=status.HTTP_303_SEE_OTHER)


def _request_of(form: dict[str, str]) -> BackfillRequest:
    """The backfill a form asks for; raises :class:`BackfillRejected` naming a field it cannot read."""
    if not form["bucket"]:
        raise BackfillRejected("bucket", "choose a bucket")
    if len(form["prefix"]) > 1024 or "\x00" in form["prefix"]:
        raise BackfillRejected("prefix", "a prefix is at most 1,024 characters, without NUL")
    try:
        since = datetime.fromisoformat(form["since"]) if form["since"] else None  # no zone: UTC (validate)
    except ValueError:
        raise BackfillRejected("since", f"not a date and time: {form['since']!r}") from None
    return BackfillRequest(bucket=form["bucket"], prefix=form["prefix"], pipeline=form["pipeline"] or None,
                           since=since, dry_run=form["dry_run"] == "true")  # fmt: skip
