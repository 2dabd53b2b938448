"""Recording routed events and creating their jobs, in the caller's engine transaction, exactly once per event."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from conveyor.db.records import NewObjectEvent
from conveyor.ingest.routing import RoutedEvent
from conveyor.pipeline.engine import EngineTransaction


@dataclass(frozen=True)
class Positioned:
    """A routed event with the Kafka partition and offset it was read from."""

    routed: RoutedEvent
    partition: int
    offset: int


@dataclass
class StoreResult:
    new_events: int = 0
    duplicates: int = 0
    jobs_by_pipeline: dict[str, int] = field(default_factory=dict)

    @property
    def jobs_created(self) -> int:
        return sum(self.jobs_by_pipeline.values())

    def add(self, other: StoreResult) -> None:
        self.new_events += other.new_events
        self.duplicates += other.duplicates
        for pipeline, count in other.jobs_by_pipeline.items():
            self.jobs_by_pipeline[pipeline] = self.jobs_by_pipeline.get(pipeline, 0) + count


async def store_events(tx: EngineTransaction, events: Sequence[Positioned], *, topic: str) -> StoreResult:
    """Record the events; for those that are new, create their pipelines' jobs (one batched DAG insert).

    Events and jobs commit together with ``tx``, or not at all.
    """
    if not events:
        return StoreResult()
    rows = [_row(p) for p in events]
    new = await tx.record_events(rows, topic=topic)
    result = StoreResult(new_events=len(new), duplicates=len(events) - len(new))
    specs = []
    for item, row in zip(events, rows, strict=True):
        event_id = new.pop(row.identity, None)  # pop: the same event twice in one batch creates jobs once
        if event_id is not None:
            specs += item.routed.recorded_as(event_id).specs()
    if specs:
        await tx.create_dag(specs)
        for spec in specs:
            result.jobs_by_pipeline[spec.pipeline or ""] = result.jobs_by_pipeline.get(spec.pipeline or "", 0) + 1
    return result


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
    )
