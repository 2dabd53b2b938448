"""Jobs: filter, sort and page through millions; a job's page with its attempts, relatives, retry and cancel."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import RedirectResponse, Response

from conveyor.api.console.auth import Action, operator, viewer
from conveyor.api.console.objects import object_path
from conveyor.api.console.rendering import render
from conveyor.api.console.session import Session
from conveyor.api.context import context_of
from conveyor.api.models import StorableText
from conveyor.db.records import JobRow, JobSearch, JobStatus
from conveyor.pipeline.engine import JobConflict, JobNotFound

router = APIRouter(prefix="/ui")
PAGE_SIZE = 50
#: Matching jobs are counted up to here; past it the page says "more than".
COUNT_CAP = 10_000


class Order(StrEnum):
    NEWEST = "newest"
    OLDEST = "oldest"


class Done(StrEnum):
    """What an action did, named in the address it redirects to (never free text from the request)."""

    RETRY = "retry"
    CANCEL = "cancel"


def id_at(moment: datetime) -> uuid.UUID:
    """The least UUIDv7 of ``moment``'s millisecond: ids at or after it are >= this one."""
    millis = int(moment.timestamp() * 1000)
    return uuid.UUID(int=max(millis, 0) << 80)


@dataclass(frozen=True)
class Filters:
    """The jobs page's form, as the address carries it."""

    status: JobStatus | None
    job_type: str | None
    bucket: str | None
    key: str | None
    since: datetime | None
    until: datetime | None
    order: Order

    def search(self) -> JobSearch:
        """The search these filters make; times become id bounds (ids are UUIDv7: id order is time order).

        ``since`` is inclusive (ids above the one just below its least id), ``until`` exclusive.
        """
        since = uuid.UUID(int=max(id_at(self.since).int - 1, 0)) if self.since else None
        return JobSearch(status=self.status, job_type=self.job_type, source_bucket=self.bucket, source_key=self.key,
                         newer_than=since, older_than=id_at(self.until) if self.until else None,
                         oldest_first=self.order is Order.OLDEST, limit=PAGE_SIZE + 1)  # fmt: skip

    def query(self, **cursor: str) -> str:
        values = {"status": self.status.value if self.status else None, "type": self.job_type, "bucket": self.bucket,
                  "key": self.key, "since": _field(self.since), "until": _field(self.until), "order": self.order.value,
                  **cursor}  # fmt: skip
        return urlencode({k: v for k, v in values.items() if v})


def _field(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M") if moment else None


def _utc(moment: datetime | None) -> datetime | None:
    """A time from the form's datetime-local field, which has no zone: the console speaks UTC."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def page_search(base: JobSearch, after: uuid.UUID | None, before: uuid.UUID | None) -> JobSearch:
    """``base`` narrowed to the page after (or before) a cursor id, in display order.

    Going back reads the other way from the cursor; the caller turns that page around.
    """
    if after is not None:
        if base.oldest_first:
            return replace(base, newer_than=_higher(base.newer_than, after))
        return replace(base, older_than=_lower(base.older_than, after))
    if before is not None:
        if base.oldest_first:
            return replace(base, oldest_first=False, older_than=_lower(base.older_than, before))
        return replace(base, oldest_first=True, newer_than=_higher(base.newer_than, before))
    return base


def _higher(bound: uuid.UUID | None, cursor: uuid.UUID) -> uuid.UUID:
    return cursor if bound is None else max(bound, cursor)


def _lower(bound: uuid.UUID | None, cursor: uuid.UUID) -> uuid.UUID:
    return cursor if bound is None else min(bound, cursor)


@router.get("/jobs")
async def jobs_page(
    request: Request,
    session: Annotated[Session, Depends(viewer)],
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
    job_type: Annotated[StorableText | None, Query(alias="type", max_length=200)] = None,
    bucket: Annotated[StorableText | None, Query(max_length=1024)] = None,
    key: Annotated[StorableText | None, Query(max_length=4096)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    order: Order = Order.NEWEST,
    after: uuid.UUID | None = None,
    before: uuid.UUID | None = None,
) -> Response:
    """A page of jobs; ``after``/``before`` hold the cursor of the next/previous page."""
    filters = Filters(status_, job_type or None, bucket or None, key or None, _utc(since), _utc(until), order)
    browse, base = context_of(request).engine.browse, filters.search()
    rows = await browse.jobs(page_search(base, after, before))
    more, rows = len(rows) > PAGE_SIZE, rows[:PAGE_SIZE]  # one row past the page says whether another follows
    if before is not None:
        rows.reverse()
    total = await browse.count_jobs(base, at_most=COUNT_CAP + 1)
    has_previous = bool(rows) and (after is not None or (before is not None and more))
    has_next = bool(rows) and (before is not None or more)
    return render(request, "jobs.html", page="jobs", filters=filters, jobs=rows, total=total, cap=COUNT_CAP,
                  has_previous=has_previous, has_next=has_next, statuses=list(JobStatus),
                  orders=list(Order))  # fmt: skip


@router.get("/jobs/{job_id}")
async def job_page(request: Request, session: Annotated[Session, Depends(viewer)], job_id: uuid.UUID,
                   done: Done | None = None, fragment: bool = False) -> Response:  # fmt: skip
    """A job: payload, result, its attempts as a timeline, parents and children, and (operators) actions."""
    return await _job_page(request, job_id, done=done, fragment=fragment)


async def _job_page(request: Request, job_id: uuid.UUID, *, done: Done | None = None, fragment: bool = False,
                    problem: str | None = None, status_code: int = 200) -> Response:  # fmt: skip
    engine = context_of(request).engine
    try:
        job = await engine.get(job_id)
    except JobNotFound:
        return render(request, "missing.html", status_code=404, page="jobs", what=f"No job {job_id}.")
    relatives = {b.id: b for b in await engine.browse.briefs([*job.depends_on, *job.dependents])}
    holds = await engine.flow.holds(job_id) if job.status is JobStatus.PENDING else []
    values: dict[str, Any] = {
        "page": "jobs", "job": job, "parents": [relatives[i] for i in job.depends_on if i in relatives],
        "children": [relatives[i] for i in job.dependents if i in relatives], "holds": holds, "done": done,
        "problem": problem, "object_path": _source_path(job),
    }  # fmt: skip
    return render(request, "job_live.html" if fragment else "job.html", status_code=status_code, **values)


def _source_path(job: JobRow) -> str | None:
    return object_path(job.source_bucket, job.source_key) if job.source_bucket and job.source_key else None


@router.post("/jobs/{job_id}/retry")
async def retry(request: Request, action: Annotated[Action, Depends(operator)], job_id: uuid.UUID) -> Response:
    """Run a FAILED or CANCELLED job again; any other status is refused (409) with the page shown again."""
    return await _act(request, job_id, Done.RETRY)


@router.post("/jobs/{job_id}/cancel")
async def cancel(request: Request, action: Annotated[Action, Depends(operator)], job_id: uuid.UUID) -> Response:
    """Cancel a job (a RUNNING one is asked to stop); its unfinished descendants are cancelled too."""
    return await _act(request, job_id, Done.CANCEL)


async def _act(request: Request, job_id: uuid.UUID, verb: Done) -> Response:
    engine = context_of(request).engine
    try:
        await (engine.retry(job_id) if verb is Done.RETRY else engine.cancel(job_id, reason="cancelled in the console"))
    except JobNotFound:
        return render(request, "missing.html", status_code=404, page="jobs", what=f"No job {job_id}.")
    except JobConflict as exc:
        return await _job_page(request, job_id, problem=str(exc), status_code=status.HTTP_409_CONFLICT)
    return RedirectResponse(f"/ui/jobs/{job_id}?done={verb.value}", status_code=status.HTTP_303_SEE_OTHER)
