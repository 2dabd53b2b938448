"""/api/objects (what happened to my file?) and /api/dlq (dead letters, and their replay)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from starlette.convertors import Convertor, register_url_convertor

from conveyor.api.context import context_of
from conveyor.api.models import (
    DeadLetterBody,
    JobBody,
    ObjectEventBody,
    ObjectStory,
    Problem,
    Replayed,
    StorableText,
)  # fmt: skip
from conveyor.db.records import JobFilter


class AnyPath(Convertor[str]):
    """Like Starlette's ``path``, but object keys may hold any character, newlines included."""

    regex = r"[\s\S]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("objectkey", AnyPath())
router = APIRouter(prefix="/api", tags=["objects"])
MAX_BIGINT = 2**63 - 1


@router.get("/objects/{bucket}/{key:objectkey}", response_model=ObjectStory)
async def object_story(
    bucket: Annotated[StorableText, Path(min_length=1, max_length=255)],
    key: Annotated[StorableText, Path(min_length=1, max_length=4096)],
    request: Request,
) -> ObjectStory:
    """Every recorded event of the object and every job they started, with statuses, results and errors."""
    engine = context_of(request).engine
    events = await engine.objects.events_of(bucket, key)
    jobs = await engine.list_jobs(JobFilter(source_bucket=bucket, source_key=key), limit=500)
    return ObjectStory(
        bucket=bucket, key=key,
        events=[ObjectEventBody(event_id=e["id"], origin=e["origin"], event_name=e["event_name"],
                                version_id=e["version_id"], sequencer=e["sequencer"], etag=e["etag"],
                                size=e["size_bytes"], event_time=e["event_time"], received_at=e["received_at"])
                for e in events],
        jobs=[JobBody.of(j) for j in reversed(jobs)],
    )  # fmt: skip


@router.get("/dlq", response_model=list[DeadLetterBody])
async def dead_letters(
    request: Request,
    include_replayed: Annotated[bool, Query(alias="includeReplayed")] = False,
    before: Annotated[int | None, Query(ge=1, le=MAX_BIGINT)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[DeadLetterBody]:
    objects = context_of(request).engine.objects
    letters = await objects.dead_letters(include_replayed=include_replayed, before=before, limit=limit)
    return [DeadLetterBody.of(d) for d in letters]


@router.post(
    "/dlq/{letter_id}/replay",
    response_model=Replayed,
    responses={404: {"model": Problem}, 503: {"model": Problem, "description": "Replay is not configured here"}},
)
async def replay(letter_id: Annotated[int, Path(ge=1, le=MAX_BIGINT)], request: Request) -> Replayed:
    """Send a dead letter through parsing and routing again (after fixing the rules)."""
    context = context_of(request)
    if context.replayer is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "dead-letter replay is not configured in this process")
    outcome = await context.replayer.replay(letter_id)
    if outcome is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dead letter {letter_id}")
    return Replayed(success=outcome.letter.replayed_at is not None, dead_letter=DeadLetterBody.of(outcome.letter),
                    jobs_created=outcome.jobs_created)  # fmt: skip
