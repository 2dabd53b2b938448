"""The consumer loop: Kafka batches in, one PostgreSQL transaction per batch, offsets committed after it.

Delivery is at-least-once from Kafka and from the S3 server; exactly-once job creation comes from the
unique event identity in PostgreSQL. So the order of a batch is fixed:

1. parse and route every message (pure); bad ones become dead letters, never a blocked partition;
2. one transaction: record the events, create the jobs of the new ones, keep the dead letters;
3. publish the dead letters to their topic and wait for Kafka's acknowledgement;
4. hand the offsets (each partition's last offset + 1) to be committed: at most once per
   ``commit_interval_seconds`` (ingest/offsets.py says why), and at once on a revoke or a stop.

A crash anywhere before a commit redelivers the batches since the last one, and step 2 finds their events
already recorded.
PostgreSQL down: the batch is retried with backoff and no offset moves. A rebalance waits for the batches
in flight to finish before the partitions move.

``run`` writes through ``write_lanes`` lanes at once: each partition belongs to one lane (its number
modulo the lanes), and a lane writes its batches one after another. So a partition's events are written,
and its offsets committed, in order, as if each lane were a member of the group of its own; one lane's
transaction and offset commit overlap the others' (bench/RESULTS.md measures what that buys). A batch
smaller than a quarter of ``batch_max_records`` is not split: it goes whole to the first lane, since a
trickle of events split four ways cost four transactions and four offset commits. A partition that so
changes lanes does it only once every earlier batch is written, so its order holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import ConsumerRecord

from conveyor.db.errors import DatabaseError, ServiceUnavailable
from conveyor.db.records import NewDeadLetter
from conveyor.ingest import deadletters
from conveyor.ingest.errors import BadEvent
from conveyor.ingest.events import parse_message
from conveyor.ingest.metrics import IngestMetrics
from conveyor.ingest.offsets import PendingOffsets
from conveyor.ingest.routing import RoutedEvent, RoutingRules, route
from conveyor.ingest.settings import IngestSettings, KafkaSettings
from conveyor.ingest.store import Positioned, StoreResult, store_events
from conveyor.pipeline.engine import Engine
from conveyor.pipeline.lifecycle.waiting import wait_for_event

log = logging.getLogger(__name__)

RETRY_BASE_SECONDS = 0.2
RETRY_CAP_SECONDS = 5.0
IDLE_LAG_INTERVAL_SECONDS = 2.0
#: A batch of fewer records than ``batch_max_records`` over this is written whole, by one lane: split
#: across lanes, the events of a trickle cost a transaction and an offset commit per lane (end to end at
#: 150 uploads/s, ingest's CPU per upload went from 0.9 to 1.6 ms and Kafka's from 0.7 to 1.8 ms).
SPLIT_FROM_FRACTION = 4


@dataclass
class Sorted:
    """A batch split into what becomes jobs, what is skipped and what is dead-lettered."""

    routed: list[Positioned] = field(default_factory=list)
    #: The Kafka record each routed event came from (parallel to ``routed``), for dead-lettering it later.
    records: list[ConsumerRecord] = field(default_factory=list)
    dead: list[NewDeadLetter] = field(default_factory=list)
    events: int = 0


@dataclass(frozen=True)
class Fetched:
    """A batch between the two stages: read and sorted, not yet written."""

    records: list[ConsumerRecord]
    offsets: dict[TopicPartition, int]
    sorted: Sorted
    fetched_at: float
    #: The lane that writes it: every partition it holds is ``lane`` modulo ``width``, the lanes its batch
    #: was split across (1: written whole).
    lane: int = 0
    width: int = 1


@dataclass(frozen=True)
class BatchReport:
    messages: int
    stored: StoreResult
    dead_letters: int
    #: Kafka timestamps (ms) of the batch's records: how long each waited to become committed jobs.
    record_timestamps_ms: list[int] = field(default_factory=list)


class _WaitForBatch(ConsumerRebalanceListener):  # type: ignore[misc]
    """Revoked partitions move only after the batches in flight have been written (or abandoned) and the
    offsets of the written ones committed: their new owner starts where this member's work ends."""

    def __init__(self, locks: Sequence[asyncio.Lock], commit_written: Callable[[], Awaitable[None]]) -> None:
        self._locks, self._commit_written = locks, commit_written

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        async with _holding(self._locks):
            await self._commit_written()
            log.info("partitions revoked: %s", sorted(tp.partition for tp in revoked))

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        log.info("partitions assigned: %s", sorted(tp.partition for tp in assigned))


class Ingestor:
    """One member of the ingest consumer group. ``start()``, then ``run_once()`` or ``run(stop)``, then ``stop()``."""

    def __init__(
        self,
        engine: Engine,
        rules: RoutingRules,
        settings: IngestSettings,
        kafka: KafkaSettings,
        metrics: IngestMetrics,
        *,
        buckets: Collection[str] | None = None,
    ) -> None:
        """``buckets``: the only buckets whose events are this deployment's (None: every bucket's)."""
        self.engine, self.rules, self.settings, self.kafka, self.metrics = engine, rules, settings, kafka, metrics
        self.buckets = frozenset(buckets) if buckets is not None else None
        metrics.prime([pipeline.name for pipeline in rules.pipeline])
        #: Held by each lane while it writes a batch; all of them, to let partitions go.
        self._lane_locks = [asyncio.Lock() for _ in range(settings.write_lanes)]
        self._pending = PendingOffsets(settings.commit_interval_seconds)
        #: Held while committing, so two commits never cross (the later one always carries the newer offsets).
        self._commit_lock = asyncio.Lock()
        self._lag_recorded_at = 0.0
        #: When the last batch with records was fetched: a batch close behind it lingers (``_linger``).
        self._last_batch_at = -math.inf
        self._kafka_failed = False
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers,
            client_id=f"{kafka.client_id}-ingest",
            group_id=settings.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=max(settings.max_message_bytes * 2, 1_048_576),
            fetch_max_bytes=max(settings.max_message_bytes * 4, 52_428_800),
            request_timeout_ms=int(kafka.request_timeout_seconds * 1000),
        )
        self.producer = AIOKafkaProducer(
            bootstrap_servers=kafka.bootstrap_servers,
            client_id=f"{kafka.client_id}-dlq",
            enable_idempotence=True,
            max_request_size=max(settings.max_message_bytes * 2, 1_048_576),
        )

    async def start(self) -> None:
        await self.producer.start()
        listener = _WaitForBatch(self._lane_locks, functools.partial(self._commit_written, now=True))
        self.consumer.subscribe([self.kafka.events_topic], listener=listener)
        await self.consumer.start()

    async def stop(self) -> None:
        """Leave the group (after the batches in flight, their offsets committed); safe to call twice."""
        async with _holding(self._lane_locks):
            await self._commit_written(now=True)
            await self.consumer.stop()
        await self.producer.stop()

    async def run_once(self, timeout_ms: int | None = None) -> BatchReport:
        """Fetch one batch (bounded in size and time), turn it into committed jobs in one transaction, and
        commit its offsets."""
        fetched = await self._fetch(timeout_ms, lanes=1)
        if not fetched:
            return BatchReport(0, StoreResult(), 0)
        report = await self._finish(fetched[0])
        await self._commit_written(now=True)
        return report

    async def _fetch(self, timeout_ms: int | None = None, *, lanes: int) -> list[Fetched]:
        """Stage 1: one batch from Kafka, parsed and routed (CPU only, no writes), split into its lanes' parts."""
        batch = await self.consumer.getmany(
            timeout_ms=self.settings.batch_max_wait_ms if timeout_ms is None else timeout_ms,
            max_records=self.settings.batch_max_records,
        )
        batch = await self._linger(batch)
        split = sum(map(len, batch.values())) >= self.settings.batch_max_records / SPLIT_FROM_FRACTION
        width = lanes if split else 1
        parts: dict[int, dict[TopicPartition, list[ConsumerRecord]]] = {}
        for tp, records in batch.items():
            if records:
                parts.setdefault(tp.partition % width, {})[tp] = records
        if not parts and time.monotonic() - self._lag_recorded_at > IDLE_LAG_INTERVAL_SECONDS:
            await self.record_lag()  # idle partitions still report their (zero) lag
        return [self._prepare(part, lane, width) for lane, part in parts.items()]

    async def _linger(
        self, batch: dict[TopicPartition, list[ConsumerRecord]]
    ) -> dict[TopicPartition, list[ConsumerRecord]]:
        """A small batch that follows the one before closely (a steady flow) waits ``batch_linger_ms`` and
        takes what arrived meanwhile: one transaction for several events, not one each."""
        count, linger = sum(map(len, batch.values())), self.settings.batch_linger_ms / 1000
        if not count:
            return batch
        steady = time.monotonic() - self._last_batch_at < linger
        if steady and count < self.settings.batch_max_records / SPLIT_FROM_FRACTION:
            await asyncio.sleep(linger)
            more = await self.consumer.getmany(timeout_ms=0, max_records=self.settings.batch_max_records - count)
            for tp, records in more.items():
                batch[tp] = [*batch.get(tp, []), *records]
        self._last_batch_at = time.monotonic()
        return batch

    def _prepare(self, batch: dict[TopicPartition, list[ConsumerRecord]], lane: int, width: int) -> Fetched:
        records = [record for records in batch.values() for record in records]
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
        return Fetched(records, offsets, self._sort(records), time.monotonic(), lane, width)

    async def _finish(self, fetched: Fetched) -> BatchReport:
        """Stage 2: record and create in one transaction (waking workers), publish dead letters, then hand
        the offsets over to be committed (now, if the interval since the last commit is up)."""
        async with self._lane_locks[fetched.lane]:
            stored = await self._store_with_retry(fetched.sorted)
            await deadletters.publish(self.producer, self.kafka.dead_letter_topic, fetched.sorted.dead)
            self._pending.add(fetched.offsets)
            await self._commit_written()
        self._observe(fetched, stored)
        await self.record_lag()
        records = fetched.records
        return BatchReport(len(records), stored, len(fetched.sorted.dead), [r.timestamp for r in records])

    def _sort(self, records: list[ConsumerRecord]) -> Sorted:
        result = Sorted()
        for record in records:
            try:
                routed = self._route(record)
            except BadEvent as exc:
                result.dead.append(_dead_letter(record, exc))
            else:
                result.events += len(routed)
                result.routed += [Positioned(r, record.partition, record.offset) for r in routed]
                result.records += [record] * len(routed)
        return result

    def _route(self, record: ConsumerRecord) -> list[RoutedEvent]:
        """Parse and route one message; raises :class:`BadEvent` for anything that must be dead-lettered."""
        s = self.settings
        events = parse_message(
            record.value or b"", max_bytes=s.max_message_bytes, plain_key_encoding=s.plain_key_encoding
        )
        if self.buckets is not None and (foreign := [e for e in events if e.bucket not in self.buckets]):
            # Another deployment's bucket on a shared topic (or a test suite's): not ours to record or route.
            self.metrics.foreign_skipped.inc(len(foreign))
            events = [e for e in events if e.bucket in self.buckets]
        routed = [route(event, self.rules, max_lineage_depth=s.max_lineage_depth) for event in events]
        for item in routed:
            if not item.pipelines and item.is_pipeline_output:
                self.metrics.outputs_skipped.inc()  # conveyor's own writes: recorded for lineage, never dead letters
            elif not item.pipelines:
                self.metrics.unrouted.inc()
                if s.dead_letter_unrouted:
                    raise BadEvent("unrouted", f"no pipeline matches s3://{item.event.bucket}/{item.event.key}")
        return routed

    async def _store_with_retry(self, batch: Sorted) -> StoreResult:
        attempt = 0
        while True:
            try:
                try:
                    stored = await self._store(batch.routed, batch.dead)
                except DatabaseError as exc:
                    log.warning("PostgreSQL refused a batch (%s); storing its events one by one", exc)
                    stored = await self._store_one_by_one(batch)
            except ServiceUnavailable as exc:
                attempt += 1
                self.metrics.database_retries.inc()
                delay = min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2**attempt) * random.uniform(0.5, 1.0)
                log.warning(
                    "PostgreSQL unavailable (%s); batch held, offsets not committed; retry in %.1fs", exc, delay
                )
                await asyncio.sleep(delay)
            else:
                return stored

    async def _store(self, routed: list[Positioned], dead: list[NewDeadLetter]) -> StoreResult:
        async with self.engine.transaction() as tx:
            stored = await store_events(
                tx, routed, topic=self.kafka.events_topic, tolerance_seconds=self.settings.same_upload_tolerance_seconds
            )
            if dead:
                await tx.record_dead_letters(dead)
        return stored

    async def _store_one_by_one(self, batch: Sorted) -> StoreResult:
        """Isolate what PostgreSQL refuses: each event in its own transaction; a refused one is dead-lettered."""
        total = StoreResult()
        for item, record in zip(batch.routed, batch.records, strict=True):
            try:
                stored = await self._store([item], [])
            except DatabaseError as exc:
                batch.dead.append(_dead_letter(record, BadEvent("database_rejected", str(exc))))
                continue
            total.add(stored)
        await self._store([], batch.dead)
        return total

    async def _commit_written(self, *, now: bool = False) -> None:
        """Commit the offsets of the batches written so far: when the commit interval is up, or ``now``."""
        async with self._commit_lock:
            if self._pending and (now or self._pending.due()):
                await self._commit(self._pending.take())

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.metrics.offset_commits.inc()
        try:
            await self.consumer.commit(offsets)
        except CommitFailedError as exc:
            # The partitions moved during a rebalance: the new owner redelivers, and the events are deduped.
            log.warning("offset commit refused after a rebalance (%s); the batch will be deduplicated", exc)
        except KafkaError as exc:
            log.warning("offset commit failed (%s); a later commit covers it", exc)

    def _observe(self, fetched: Fetched, stored: StoreResult) -> None:
        m, batch = self.metrics, fetched.sorted
        m.messages_consumed.inc(len(fetched.records))
        m.batch_size.observe(len(fetched.records))
        m.events_consumed.inc(batch.events)
        m.duplicates.inc(stored.duplicates)
        m.same_upload.inc(stored.same_upload)
        m.removals.inc(stored.removals)
        m.jobs_cancelled_by_removal.inc(stored.jobs_cancelled)
        for pipeline, count in stored.jobs_by_pipeline.items():
            m.jobs_created.labels(pipeline).inc(count)
        for letter in batch.dead:
            m.dead_lettered.labels(letter.reason).inc()
        now = datetime.now(UTC)
        for item in batch.routed:
            if item.routed.event.event_time is not None:
                m.event_to_job_seconds.observe(max(0.0, (now - item.routed.event.event_time).total_seconds()))
        m.batch_seconds.observe(time.monotonic() - fetched.fetched_at)

    async def record_lag(self) -> None:
        """Set the lag gauge of each assigned partition: its high-water mark minus our position.

        Best effort: during a rebalance a partition may be gone between listing and asking; it is skipped.
        """
        self._lag_recorded_at = time.monotonic()
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            if highwater is None:
                continue
            try:
                position = await self.consumer.position(tp)
            except KafkaError as exc:
                log.debug("lag of %s not recorded: %s", tp, exc)
                continue
            self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, highwater - position))

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, fetching the next batch while the lanes write the ones before it.

        The stages overlap (Python parses batch N+1 while PostgreSQL writes batch N, and each lane writes
        while the others do), but a lane finishes its batches, and commits their offsets, strictly in order.
        Kafka errors are logged and retried; any other failure of a stage stops the rest and is raised.
        """
        lanes = _Lanes(len(self._lane_locks))
        stages = [asyncio.create_task(self._fetch_until(stop, lanes), name="ingest-fetch")]
        stages += [
            asyncio.create_task(self._write_until(lanes, n), name=f"ingest-write-{n}") for n in range(lanes.count)
        ]
        try:
            done, _ = await asyncio.wait(stages, return_when=asyncio.FIRST_EXCEPTION)
            for stage in done:
                stage.result()  # raises what killed a stage: the process stops, loudly, and is restarted
        finally:
            for stage in stages:
                stage.cancel()
            await asyncio.gather(*stages, return_exceptions=True)

    async def _write_until(self, lanes: _Lanes, lane: int) -> None:
        """Write lane ``lane``'s batches in the order fetched, until the fetch stage's end-of-stream marker."""
        while (fetched := await lanes.queues[lane].get()) is not None:
            await self._finish_retrying(fetched)
            lanes.written()

    async def _finish_retrying(self, fetched: Fetched) -> None:
        # Finishing again is safe: recorded events are found, dead letters and offsets are idempotent.
        while True:
            try:
                await self._finish(fetched)
            except KafkaError as exc:
                log.warning("Kafka unavailable while finishing a batch (%s); retrying it", exc)
                await asyncio.sleep(1.0)
            else:
                return

    async def _fetch_until(self, stop: asyncio.Event, lanes: _Lanes) -> None:
        while not stop.is_set():
            try:
                fetched = await self._fetch(lanes=lanes.count)
            except KafkaError as exc:
                log.warning("Kafka error (%s); reconnecting", exc)
                self._kafka_failed = True
                await wait_for_event(stop, 1.0)
                continue
            if self._kafka_failed:
                await self._suspect_gap()
            for part in fetched:
                await lanes.hand_over(part)
            await self._commit_written()  # a quiet spell still commits what the last batches wrote
        await lanes.close()

    async def _suspect_gap(self) -> None:
        """Kafka is back after failing: the S3 server may have dropped events meanwhile. Ask for an early
        sweep (the reconciler waits out its grace window, then lists)."""
        self._kafka_failed = False
        try:
            await self.engine.sweeps.request(sorted(self.buckets or ()), reason="ingest could not reach Kafka")
        except ServiceUnavailable as exc:
            log.warning("could not ask for an early sweep after a Kafka outage: %s", exc)


class _Lanes:
    """The write lanes of one ``run``: a queue each, and how many batches they hold that are not written."""

    def __init__(self, count: int) -> None:
        self.queues: list[asyncio.Queue[Fetched | None]] = [asyncio.Queue(maxsize=1) for _ in range(count)]
        self._unwritten = 0
        self._all_written = asyncio.Event()
        self._all_written.set()
        self._width = 1  # how many lanes the batches handed over were split across

    @property
    def count(self) -> int:
        return len(self.queues)

    async def hand_over(self, part: Fetched) -> None:
        """Queue ``part`` on its lane; when batches change width, first let every earlier one be written (a
        partition may change lanes, and its new lane must not overtake its old one)."""
        if part.width != self._width:
            await self._all_written.wait()
            self._width = part.width
        self._unwritten += 1
        self._all_written.clear()
        await self.queues[part.lane].put(part)

    def written(self) -> None:
        """A lane wrote one batch handed over."""
        self._unwritten -= 1
        if not self._unwritten:
            self._all_written.set()

    async def close(self) -> None:
        """Each lane stops after the batches it holds."""
        for queue in self.queues:
            await queue.put(None)


@contextlib.asynccontextmanager
async def _holding(locks: Sequence[asyncio.Lock]) -> AsyncIterator[None]:
    """Every lock of ``locks``, taken in order (a lane holds only its own, so this cannot deadlock)."""
    async with contextlib.AsyncExitStack() as stack:
        for lock in locks:
            await stack.enter_async_context(lock)
        yield


def _dead_letter(record: ConsumerRecord, exc: BadEvent) -> NewDeadLetter:
    return NewDeadLetter(
        reason=exc.reason,
        error=str(exc),
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value or b"",
        headers=tuple(record.headers or ()),
    )
