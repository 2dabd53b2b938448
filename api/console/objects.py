"""Objects: search a bucket by key prefix; an object's page tells what happened to it, pipelines drawn."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from conveyor.api.console.auth import viewer
from conveyor.api.console.dag import draw
from conveyor.api.console.rendering import render
from conveyor.api.console.session import Session
from conveyor.api.context import context_of
from conveyor.api.models import StorableText
from conveyor.api.objects import AnyPath  # noqa: F401 - importing it registers the `objectkey` path convertor
from conveyor.db.records import JobFilter, JobRow

router = APIRouter(prefix="/ui")
PAGE_SIZE = 50
#: An object's page shows this many of its jobs (every pipeline of every upload of that key).
JOBS_SHOWN = 500


def object_path(bucket: str, key: str) -> str:
    """The console address of ``s3://bucket/key`` (every character of the key kept)."""
    return f"/ui/objects/{quote(bucket, safe='')}/{quote(key, safe='/')}"


@dataclass(frozen=True)
class Output:
    """Something a job wrote: an extracted member, a copy, an archive's output prefix."""

    job: JobRow
    what: str
    address: str

    @property
    def link(self) -> str | None:
        """The console page of the object written, when it is one object (not a prefix)."""
        if not self.address.startswith("s3://") or self.address.endswith("/"):
            return None
        bucket, _, key = self.address[5:].partition("/")
        return object_path(bucket, key) if key else None


def outputs(jobs: Sequence[JobRow]) -> Iterator[Output]:
    """What the jobs' results say they wrote: ``target`` (copy, move), ``output`` and ``written`` (archives)."""
    for job in jobs:
        result: Any = job.result if isinstance(job.result, dict) else {}
        if isinstance(result.get("target"), str):
            yield Output(job, "copy" if not result.get("moved") else "moved to", result["target"])
        if isinstance(result.get("output"), str):
            yield Output(job, "output prefix", result["output"])
            bucket = result["output"][5:].partition("/")[0]
            for member in result.get("written") or []:  # keys in the output's bucket
                if isinstance(member, str):
                    yield Output(job, "extracted", f"s3://{bucket}/{member}")


@router.get("/objects")
async def search(
    request: Request,
    session: Annotated[Session, Depends(viewer)],
    bucket: Annotated[StorableText | None, Query(max_length=255)] = None,
    prefix: Annotated[StorableText, Query(max_length=1024)] = "",
    after_key: Annotated[StorableText | None, Query(max_length=4096)] = None,
    after_version: Annotated[StorableText, Query(max_length=1024)] = "",
) -> Response:
    """A bucket's recorded uploads whose key starts with ``prefix``, in key order, a page at a time."""
    context = context_of(request)
    bucket = bucket or (context.buckets[0] if context.buckets else "")
    after = (after_key, after_version) if after_key is not None else None
    found = await context.engine.browse.objects(bucket, prefix, after=after, limit=PAGE_SIZE + 1) if bucket else []
    return render(request, "objects.html", page="objects", bucket=bucket, prefix=prefix, buckets=context.buckets,
                  objects=found[:PAGE_SIZE], more=len(found) > PAGE_SIZE, object_path=object_path)  # fmt: skip


@router.get("/objects/{bucket}/{key:objectkey}")
async def story(request: Request, session: Annotated[Session, Depends(viewer)],
                bucket: Annotated[StorableText, Path(min_length=1, max_length=255)],
                key: Annotated[StorableText, Path(min_length=1, max_length=4096)],
                fragment: bool = False) -> Response:  # fmt: skip
    """Every event that reached the object, its pipelines drawn with each job's status, and what they wrote."""
    engine = context_of(request).engine
    events = await engine.objects.events_of(bucket, key)
    jobs = list(reversed(await engine.list_jobs(JobFilter(source_bucket=bucket, source_key=key), limit=JOBS_SHOWN)))
    values: dict[str, Any] = {
        "page": "objects", "bucket": bucket, "key": key, "events": events, "jobs": jobs, "drawings": draw(jobs),
        "outputs": list(outputs(jobs)), "settled": bool(jobs) and all(j.status.is_final for j in jobs),
        "object_path": object_path(bucket, key),
    }  # fmt: skip
    return render(request, "object_live.html" if fragment else "object.html", **values)
