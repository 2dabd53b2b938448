"""One sweep of a bucket, page by page: list, compare with what is recorded, start what is missing.

Reconcile sweeps (notification gaps) and backfills (objects that already exist) share this path:

1. list one page (one LIST request) from the sweep's cursor;
2. ask PostgreSQL what is recorded of the page (one statement): the new uploads among it;
3. HEAD each new one (routing needs its content type and metadata; one gone since is skipped);
4. build a notification for it, in the shape MinIO sends, and parse and route that like a Kafka
   message: the same dedupe, lineage and dead letters (the event is marked with its origin);
5. one transaction: the events, uploads and jobs, and the cursor after the page. A killed runner's
   sweep resumes from the last committed cursor, and the page it was on starts nothing twice.

A backfill also gives recorded uploads the pipelines they have not run (a rule added since).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from minio import Minio

from conveyor.db.errors import ConveyorError
from conveyor.db.records import (
    EventOrigin,
    ListedObject,
    NewDeadLetter,
    NewObjectEvent,
    RecordedUpload,
    SweepKind,
    SweepPage,
    SweepRow,
    SweepStatus,
)
from conveyor.ingest.errors import BadEvent
from conveyor.ingest.events import UploadEvent, parse_message, synthesized_message
from conveyor.ingest.metrics import ReconcileMetrics
from conveyor.ingest.routing import RoutedEvent, RoutingRules, route
from conveyor.ingest.settings import IngestSettings, ReconcileSettings
from conveyor.ingest.store import Positioned, store_events
from conveyor.pipeline.engine import Engine, EngineTransaction
from conveyor.pipeline.engine.errors import StorageError
from conveyor.pipeline.storage.listing import ListedPage, ObjectDetails, is_versioned, list_page, object_details

log = logging.getLogger(__name__)

#: The source topic of a synthesized event's dead letter (it came from no Kafka topic).
SWEEP_TOPIC = "conveyor.sweep"
PUT = "s3:ObjectCreated:Put"
MULTIPART = "s3:ObjectCreated:CompleteMultipartUpload"
#: The coarsest time a listing's LastModified may carry.
LISTING_PRECISION = timedelta(seconds=1)
#: HEAD requests in flight at once for a page's new objects.
HEAD_CONCURRENCY = 8


class SweepLost(ConveyorError):
    """Another runner holds the sweep now (this one's lease lapsed): the page was rolled back."""


@dataclass
class PagePlan:
    """What one page will do: new uploads to record, recorded ones to give more pipelines, dead letters."""

    new: list[Positioned] = field(default_factory=list)
    more: list[RoutedEvent] = field(default_factory=list)
    dead: list[NewDeadLetter] = field(default_factory=list)


@dataclass(frozen=True)
class PageOutcome:
    uploads: int
    jobs: int
    #: Objects found with nothing recorded: new uploads recorded, and new dead letters. One a notification
    #: recorded meanwhile, or already dead-lettered by an earlier sweep, is not found again.
    missing: int


class SweepRunner:
    """Runs sweeps in this process, under a lease in the ``sweeps`` table (so one runner at a time)."""

    def __init__(
        self,
        engine: Engine,
        s3: Minio,
        rules: RoutingRules,
        ingest: IngestSettings,
        settings: ReconcileSettings,
        metrics: ReconcileMetrics,
        *,
        owner: str,
    ) -> None:
        self.engine, self.s3, self.rules, self.ingest, self.settings = engine, s3, rules, ingest, settings
        self.metrics, self.owner = metrics, owner
        self._page_started = 0.0

    async def run(
        self, sweep_id: int, *, until: float | None = None, on_page: Callable[[SweepRow], None] | None = None
    ) -> SweepRow | None:
        """Run the sweep from its cursor until it ends, or until ``until`` (monotonic) passes between pages.

        Returns the sweep as it stands, or None when another live runner holds it. An S3 error ends it
        FAILED with the error (the next sweep starts over; a backfill can be started again).
        """
        sweep = await self.engine.sweeps.claim(sweep_id, owner=self.owner, lease_seconds=self.settings.lease_seconds)
        if sweep is None:
            return None
        try:
            return await self._pages(sweep, until, on_page)
        except StorageError as exc:
            log.warning("sweep %d of s3://%s/%s failed: %s", sweep.id, sweep.bucket, sweep.prefix, exc)
            self.metrics.sweeps.labels(sweep.kind, "failed").inc()
            return await self.engine.sweeps.finish(sweep.id, owner=self.owner, status=SweepStatus.FAILED,
                                                   error=str(exc))  # fmt: skip
        except SweepLost:
            log.warning("sweep %d was taken over by another runner; this one stops", sweep.id)
            self.metrics.sweeps.labels(sweep.kind, "lost").inc()
            return await self.engine.sweeps.get(sweep.id)

    async def _pages(
        self, sweep: SweepRow, until: float | None, on_page: Callable[[SweepRow], None] | None
    ) -> SweepRow:
        versions = await asyncio.to_thread(is_versioned, self.s3, sweep.bucket)
        if sweep.kind is SweepKind.BACKFILL and sweep.objects_total is None:
            sweep = await self._count(sweep, versions, until)
            if sweep.objects_total is None:
                return sweep  # the slice ended while counting: the next one counts on
        floor = await self._floor(sweep)
        cursor = sweep.cursor_key
        while True:
            await self._pace()
            page = await self._list(sweep, cursor, versions)
            sweep = await self._page(sweep, page, floor)
            self._observe_progress(sweep)
            if on_page is not None:
                on_page(sweep)
            if page.cursor is None:
                return await self._complete(sweep)
            cursor = page.cursor
            if until is not None and time.monotonic() >= until:
                return sweep

    async def _list(self, sweep: SweepRow, after: str | None, versions: bool) -> ListedPage:
        self.metrics.list_requests.labels(sweep.bucket).inc()
        return await asyncio.to_thread(list_page, self.s3, sweep.bucket, prefix=sweep.prefix, after=after,
                                       limit=self.settings.page_size, versions=versions)  # fmt: skip

    async def _count(self, sweep: SweepRow, versions: bool, until: float | None) -> SweepRow:
        """A backfill's total: a paced listing pass that only counts (for its progress and ETA). Its cursor
        is kept like the listing's, so a bucket of millions is counted across slices and crashes."""
        cursor, counted = sweep.count_cursor, sweep.objects_counted
        while True:
            await self._pace()
            page = await self._list(sweep, cursor, versions)
            counted += len(page.objects)
            done, lease = page.cursor is None, self.settings.lease_seconds
            row = await self.engine.sweeps.count(sweep.id, owner=self.owner, cursor=page.cursor, counted=counted,
                                                 done=done, lease_seconds=lease)  # fmt: skip
            if row is None:
                raise SweepLost(f"sweep {sweep.id} is no longer held by {self.owner}")
            if done or (until is not None and time.monotonic() >= until):
                return row
            cursor = page.cursor

    async def _floor(self, sweep: SweepRow) -> datetime | None:
        """The oldest write the sweep considers: a backfill's ``since``; for a reconcile sweep, when
        conveyor began watching the bucket (older objects are a backfill's), unless told otherwise."""
        if sweep.kind is SweepKind.BACKFILL:
            return sweep.since
        if self.settings.include_existing:
            return None
        (watched,) = await self.engine.sweeps.watch([sweep.bucket])
        return watched.since

    async def _pace(self) -> None:
        wait = self._page_started + 1.0 / self.settings.max_pages_per_second - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._page_started = time.monotonic()

    # -- one page ------------------------------------------------------------------------------------

    async def _page(self, sweep: SweepRow, page: ListedPage, floor: datetime | None) -> SweepRow:
        # A reconcile sweep leaves recent writes to their notifications (a HEAD saved, no false "missing");
        # a backfill takes every object: one whose notification is in flight still starts once.
        grace = self.settings.grace_seconds if sweep.kind is SweepKind.RECONCILE else 0.0
        horizon = datetime.now(UTC) - timedelta(seconds=grace)
        # Listings may state times in whole seconds (AWS, versitygw): an object written in the second the
        # watch began belongs to the watch.
        floor = floor - LISTING_PRECISION if floor is not None else None
        eligible = [o for o in page.objects if o.modified_at <= horizon and (floor is None or o.modified_at >= floor)]
        recorded = await self.engine.sweeps.recorded(
            sweep.bucket, eligible, tolerance_seconds=self.ingest.same_upload_tolerance_seconds
        ) if eligible else []  # fmt: skip
        plan = await self._plan(sweep, eligible, recorded)
        async with self.engine.transaction() as tx:
            outcome = _dry_outcome(plan) if sweep.dry_run else await self._write(tx, sweep, plan)
            counts = SweepPage(cursor_key=page.cursor, cursor_version=None, listed=len(page.objects),
                               missing=outcome.missing, started=outcome.uploads, jobs_created=outcome.jobs)  # fmt: skip
            row = await tx.advance_sweep(sweep.id, counts, owner=self.owner, lease_seconds=self.settings.lease_seconds)
            if row is None:
                raise SweepLost(f"sweep {sweep.id} is no longer held by {self.owner}")
        self._observe_page(sweep, page, outcome)
        return row

    async def _plan(
        self, sweep: SweepRow, listed: Sequence[ListedObject], recorded: Sequence[RecordedUpload]
    ) -> PagePlan:
        plan = PagePlan()
        new = [o for o, r in zip(listed, recorded, strict=True) if r.is_new]
        details = await self._details(sweep.bucket, new)
        origin = EventOrigin.SWEEP if sweep.kind is SweepKind.RECONCILE else EventOrigin.BACKFILL
        for listed_object, detail in zip(new, details, strict=True):
            if detail is None or (detail.etag and listed_object.etag and detail.etag != listed_object.etag):
                continue  # removed or written again since it was listed: its own events tell the rest
            self._add_new(plan, sweep, _event(sweep.bucket, listed_object, detail), origin)
        if sweep.kind is SweepKind.BACKFILL:
            for listed_object, known in zip(listed, recorded, strict=True):
                if not known.is_new:
                    self._add_more(plan, sweep, listed_object, known)
        return plan

    async def _details(self, bucket: str, listed: Sequence[ListedObject]) -> list[ObjectDetails | None]:
        if listed:
            self.metrics.head_requests.labels(bucket).inc(len(listed))
        gate = asyncio.Semaphore(HEAD_CONCURRENCY)

        async def head(o: ListedObject) -> ObjectDetails | None:
            async with gate:
                return await asyncio.to_thread(object_details, self.s3, bucket, o.key, o.version_id)

        return list(await asyncio.gather(*(head(o) for o in listed)))

    def _add_new(self, plan: PagePlan, sweep: SweepRow, event: UploadEvent, origin: EventOrigin) -> None:
        """Send the found object through the same parsing and routing as a Kafka message."""
        message = synthesized_message(event, origin=origin, event_time=datetime.now(UTC))
        try:
            (parsed,) = parse_message(message, max_bytes=max(self.ingest.max_message_bytes, len(message)))
            routed = route(parsed, self.rules, max_lineage_depth=self.ingest.max_lineage_depth)
        except BadEvent as exc:
            plan.dead.append(_dead_letter(event, message, exc))
            return
        plan.new.append(Positioned(self._only_wanted(routed, sweep)))

    def _add_more(self, plan: PagePlan, sweep: SweepRow, listed: ListedObject, known: RecordedUpload) -> None:
        """A recorded upload: the pipelines routing gives it now that it has not run (a backfill's)."""
        event = UploadEvent(bucket=sweep.bucket, key=listed.key, version_id=listed.version_id,
                            event_name=known.event_name or PUT, etag=listed.etag, size=listed.size,
                            content_type=known.content_type, user_metadata=known.user_metadata,
                            modified_at=listed.modified_at, event_time=datetime.now(UTC),
                            origin=EventOrigin.BACKFILL)  # fmt: skip
        try:
            routed = self._only_wanted(route(event, self.rules, max_lineage_depth=self.ingest.max_lineage_depth), sweep)
        except BadEvent:
            return  # it was dead-lettered when first recorded
        lacking = [p for p in routed.pipelines if p.name not in known.pipelines]
        if lacking:
            plan.more.append(replace(routed, pipelines=lacking))

    @staticmethod
    def _only_wanted(routed: RoutedEvent, sweep: SweepRow) -> RoutedEvent:
        if sweep.pipeline is None:
            return routed
        return replace(routed, pipelines=[p for p in routed.pipelines if p.name == sweep.pipeline])

    async def _write(self, tx: EngineTransaction, sweep: SweepRow, plan: PagePlan) -> PageOutcome:
        stored = await store_events(tx, plan.new, topic=SWEEP_TOPIC,
                                    tolerance_seconds=self.ingest.same_upload_tolerance_seconds)  # fmt: skip
        more_uploads, more_jobs = await self._start_more(tx, sweep, plan.more) if plan.more else (0, 0)
        dead = await tx.record_dead_letters(plan.dead) if plan.dead else []
        return PageOutcome(stored.uploads + more_uploads, stored.jobs_created + more_jobs, stored.uploads + len(dead))

    async def _start_more(self, tx: EngineTransaction, sweep: SweepRow, more: list[RoutedEvent]) -> tuple[int, int]:
        """Add the lacking pipelines to recorded uploads (row-locked: a concurrent backfill adds none
        twice), each under a backfill event of its own; the uploads changed and the jobs created."""
        wanted = [(r.event.key, r.event.version_id, [p.name for p in r.pipelines]) for r in more]
        added = await tx.add_pipelines(sweep.bucket, wanted)
        changed = [r for r in more if (r.event.bucket, r.event.key, r.event.version_id) in added]
        rows = [_backfill_row(r.event, sweep.id) for r in changed]
        ids = await tx.record_events(rows, topic=SWEEP_TOPIC)
        runs = []
        for routed, row in zip(changed, rows, strict=True):
            names = added[(routed.event.bucket, routed.event.key, routed.event.version_id)][1]
            narrowed = replace(routed, pipelines=[p for p in routed.pipelines if p.name in names])
            runs += narrowed.recorded_as(ids[row.identity]).runs()
        if runs:
            await tx.start_runs(runs)
        return len(changed), sum(len(run.blueprint.steps) for run in runs)

    # -- ends and figures ------------------------------------------------------------------------------

    async def _complete(self, sweep: SweepRow) -> SweepRow:
        done = await self.engine.sweeps.finish(sweep.id, owner=self.owner, status=SweepStatus.COMPLETED)
        if done is None:
            raise SweepLost(f"sweep {sweep.id} is no longer held by {self.owner}")
        self.metrics.sweeps.labels(done.kind, "completed").inc()
        if done.started_at and done.finished_at:
            self.metrics.sweep_seconds.labels(done.kind).observe((done.finished_at - done.started_at).total_seconds())
        log.info("sweep %d (%s) of s3://%s/%s complete: %d listed, %d missing, %d started, %d jobs", done.id,
                 done.kind, done.bucket, done.prefix, done.objects_listed, done.objects_missing, done.objects_started,
                 done.jobs_created)  # fmt: skip
        return done

    def _observe_page(self, sweep: SweepRow, page: ListedPage, outcome: PageOutcome) -> None:
        m = self.metrics
        m.objects_listed.labels(sweep.bucket, sweep.kind).inc(len(page.objects))
        m.objects_started.labels(sweep.bucket, sweep.kind).inc(outcome.uploads)
        if sweep.kind is SweepKind.RECONCILE and outcome.missing:
            m.objects_missing.labels(sweep.bucket).inc(outcome.missing)
            log.warning("sweep %d found %d objects of s3://%s no notification brought", sweep.id, outcome.missing,
                        sweep.bucket)  # fmt: skip

    def _observe_progress(self, sweep: SweepRow) -> None:
        if sweep.kind is SweepKind.BACKFILL and sweep.objects_total is not None:
            self.metrics.backfill_remaining.set(max(0, sweep.objects_total - sweep.objects_listed))


def _event(bucket: str, listed: ListedObject, detail: ObjectDetails) -> UploadEvent:
    etag = listed.etag or detail.etag
    return UploadEvent(
        bucket=bucket, key=listed.key, version_id=listed.version_id,
        event_name=MULTIPART if etag and "-" in etag else PUT, etag=etag, size=listed.size,
        content_type=detail.content_type, user_metadata=detail.user_metadata, modified_at=listed.modified_at,
    )  # fmt: skip


def _backfill_row(event: UploadEvent, sweep_id: int) -> NewObjectEvent:
    return NewObjectEvent(
        bucket=event.bucket, key=event.key, version_id=event.version_id, event_name=event.event_name,
        sequencer=f"backfill-{sweep_id}", etag=event.etag, size=event.size, content_type=event.content_type,
        user_metadata=event.user_metadata, event_time=event.event_time, partition=None, offset=None,
        origin=EventOrigin.BACKFILL, modified_at=event.modified_at,
    )  # fmt: skip


def _dead_letter(event: UploadEvent, message: bytes, exc: BadEvent) -> NewDeadLetter:
    """A synthesized event that cannot become jobs, kept once (a stable offset from what it reports)."""
    identity = f"{event.bucket}\0{event.key}\0{event.version_id}\0{event.etag}\0{event.modified_at}".encode()
    offset = int.from_bytes(hashlib.blake2b(identity, digest_size=8).digest()) >> 1
    return NewDeadLetter(reason=exc.reason, error=str(exc), topic=SWEEP_TOPIC, partition=0, offset=offset,
                         key=f"{event.bucket}/{event.key}".encode(), value=message)  # fmt: skip


def _dry_outcome(plan: PagePlan) -> PageOutcome:
    """What the page would do (a dry run writes nothing, so nothing is deduplicated against the write)."""
    routed = [p.routed for p in plan.new] + plan.more
    jobs = sum(len(run.blueprint.steps) for r in routed for run in r.runs())
    return PageOutcome(len(plan.new) + len(plan.more), jobs, len(plan.new) + len(plan.dead))
