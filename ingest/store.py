"""Recording routed events and creating their jobs, in the caller's engine transaction, exactly once per upload.

Two identities decide what an event does:

- the **event** (bucket, key, version id, event name, sequencer): a redelivered Kafka offset or a
  repeated notification is the same event, recorded once and otherwise ignored;
- the **upload** (bucket, key, version id, and the etag and time it was written): a notification, a
  sweep's listing, a backfill and a late notification of one write are different events of one upload.
  Only the event that records the upload first starts its pipelines (``uploads`` in the schema says
  when two writes are the same upload). A removal cancels the unfinished jobs of what it removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from conveyor.db.records import NewObjectEvent, NewUpload, ObjectVersion, Removal
from conveyor.ingest.events import DELETE_MARKER_CREATED, UploadEvent
from conveyor.ingest.routing import RoutedEvent
from conveyor.pipeline.engine import EngineTransaction

#: Two writes of an object with the same etag this close in time are one upload: listings and
#: notifications carry the time at different precisions (ms, s, or only the event's own time).
DEFAULT_TOLERANCE_SECONDS = 2.0


@dataclass(frozen=True)
class Positioned:
    """A routed event with the Kafka partition and offset it was read from (None when synthesized)."""

    routed: RoutedEvent
    partition: int | None = None
    offset: int | None = None


@dataclass
class StoreResult:
    new_events: int = 0
    duplicates: int = 0
    #: New events of an upload already recorded (a late notification after a sweep, or the reverse).
    same_upload: int = 0
    #: New uploads recorded: each started its pipelines (or, routed nowhere, is recorded as seen).
    uploads: int = 0
    removals: int = 0
    jobs_cancelled: int = 0
    jobs_by_pipeline: dict[str, int] = field(default_factory=dict)

    @property
    def jobs_created(self) -> int:
        return sum(self.jobs_by_pipeline.values())

    def add(self, other: StoreResult) -> None:
        self.new_events += other.new_events
        self.duplicates += other.duplicates
        self.same_upload += other.same_upload
        self.uploads += other.uploads
        self.removals += other.removals
        self.jobs_cancelled += other.jobs_cancelled
        for pipeline, count in other.jobs_by_pipeline.items():
            self.jobs_by_pipeline[pipeline] = self.jobs_by_pipeline.get(pipeline, 0) + count


async def store_events(
    tx: EngineTransaction,
    events: Sequence[Positioned],
    *,
    topic: str,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
) -> StoreResult:
    """Record the events; removals cancel what they removed, new uploads create their pipelines' jobs.

    Removals go first, so a creation older than a removal in the same batch starts nothing. Events,
    uploads and jobs commit together with ``tx``, or not at all.
    """
    if not events:
        return StoreResult()
    rows = [_row(p) for p in events]
    new = await tx.record_events(rows, topic=topic)
    fresh = [(item.routed, new.pop(row.identity)) for item, row in zip(events, rows, strict=True)
             if row.identity in new]  # fmt: skip  # pop: the same event twice in one batch counts once
    result = StoreResult(new_events=len(fresh), duplicates=len(events) - len(fresh))
    removals = [_removal(routed.event) for routed, _ in fresh if routed.event.is_removal]
    if removals:
        cancelled = await tx.record_removals(removals)
        result.removals, result.jobs_cancelled = len(removals), len(cancelled)
    creations = _latest_per_object([(r, i) for r, i in fresh if not r.event.is_removal])
    started = await tx.record_uploads([_upload(r, i) for r, i in creations], tolerance_seconds=tolerance_seconds)
    result.uploads, result.same_upload = len(started), len(creations) - len(started)
    runs = [run for routed, event_id in creations if _version(routed.event) in started
            for run in routed.recorded_as(event_id).runs()]  # fmt: skip
    if runs:
        await tx.start_runs(runs)
        for run in runs:
            name = run.blueprint.pipeline
            result.jobs_by_pipeline[name] = result.jobs_by_pipeline.get(name, 0) + len(run.blueprint.steps)
    return result


def _latest_per_object(creations: list[tuple[RoutedEvent, int]]) -> list[tuple[RoutedEvent, int]]:
    """One creation per object version: the latest write (an earlier one in the batch was overwritten)."""
    latest: dict[ObjectVersion, tuple[RoutedEvent, int]] = {}
    for routed, event_id in creations:
        key = _version(routed.event)
        held = latest.get(key)
        if held is None or _written(routed.event) >= _written(held[0].event):
            latest[key] = (routed, event_id)
    return list(latest.values())


def _written(event: UploadEvent) -> datetime:
    return event.written_at or datetime.min.replace(tzinfo=UTC)


def _version(event: UploadEvent) -> ObjectVersion:
    return (event.bucket, event.key, event.version_id)


def _upload(routed: RoutedEvent, event_id: int) -> NewUpload:
    e = routed.event
    return NewUpload(
        bucket=e.bucket, key=e.key, version_id=e.version_id, etag=e.etag, size=e.size, modified_at=e.written_at,
        event_id=event_id, origin=e.origin, pipelines=[p.name for p in routed.pipelines],
    )  # fmt: skip


def _removal(event: UploadEvent) -> Removal:
    marker = event.event_name == DELETE_MARKER_CREATED
    what = f"s3://{event.bucket}/{event.key}" + (
        f" (version {event.version_id})" if event.version_id and not marker else ""
    )
    removed_at = event.written_at or datetime.now(UTC)
    return Removal(
        bucket=event.bucket, key=event.key, version_id=event.version_id, any_version=marker, removed_at=removed_at,
        message=f"object removed: {what} was deleted ({event.event_name} at {removed_at.isoformat()})",
    )  # fmt: skip


def _row(item: Positioned) -> NewObjectEvent:
    e = item.routed.event
    return NewObjectEvent(
        bucket=e.bucket,
        key=e.key,
        version_id=e.version_id,
        event_name=e.event_name,
        sequencer=e.sequencer,
        etag=e.etag,
        size=e.size,
        content_type=e.content_type,
        user_metadata=e.user_metadata,
        event_time=e.event_time,
        partition=item.partition,
        offset=item.offset,
        origin=e.origin,
        modified_at=e.modified_at,
    )
