"""A worker process: claims jobs it has handlers for, runs them, and reports back.

Lifecycle: ``run(stop)`` registers the worker, then runs supervised side tasks (wake-up listener,
heartbeat, completion writer, the maintenance campaign) beside the claim loop until ``stop`` is set.
Shutdown stops claiming, gives running jobs ``shutdown_grace_seconds``, then cancels the rest and
requeues them unrun (no attempt spent). A worker that dies instead is declared LOST by the rescuer of
whichever process leads maintenance.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import redis.asyncio as aioredis
from minio import Minio
from redis.exceptions import RedisError

from conveyor import __version__
from conveyor.db.errors import ConfigurationError, ConveyorError, DatabaseError, ServiceUnavailable
from conveyor.db.records import HeldJob, JobRow, JobStatus, NewWorker, WorkerStatus
from conveyor.db.values import unstorable
from conveyor.pipeline.engine import Engine, Failure, FailureKind
from conveyor.pipeline.engine.errors import ObjectMissing
from conveyor.pipeline.engine.settings import EngineSettings, RedisSettings
from conveyor.pipeline.engine.wakeup import WakeupListener
from conveyor.pipeline.handlers.base import HandlerRegistry, JobContext, PermanentFailure, RetryLater
from conveyor.pipeline.lifecycle.periodic import every
from conveyor.pipeline.lifecycle.tasks import Supervisor
from conveyor.pipeline.maintenance.leader import MaintenanceLeader
from conveyor.pipeline.worker import health
from conveyor.pipeline.worker.claim_ahead import CLAIM_AHEAD_PER_SLOT, RecentFinishes
from conveyor.pipeline.worker.completer import Completer
from conveyor.pipeline.worker.metrics import WorkerMetrics
from conveyor.pipeline.worker.running import STOPPED, Outcome, Running, StopReason
from conveyor.pipeline.worker.settings import WorkerSettings

log = logging.getLogger(__name__)

_UNSTORABLE = "a NUL character, a lone surrogate or a non-finite number"


class Worker:
    """One worker process's engine side. Tests drive ``claim_once()`` and ``heartbeat_once()`` directly."""

    def __init__(
        self,
        engine: Engine,
        handlers: HandlerRegistry,
        s3: Minio,
        redis: aioredis.Redis,
        settings: WorkerSettings,
        engine_settings: EngineSettings,
        redis_settings: RedisSettings,
        metrics: WorkerMetrics,
        *,
        name: str | None = None,
    ) -> None:
        self.engine, self.handlers, self.s3, self.redis = engine, handlers, s3, redis
        self.settings, self.engine_settings, self.redis_settings, self.metrics = (
            settings, engine_settings, redis_settings, metrics,
        )  # fmt: skip
        self.id = uuid.uuid4()
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.job_types = self._job_types()
        self._job_type_set = frozenset(self.job_types)
        self.running: dict[uuid.UUID, Running] = {}
        self.completer = Completer(
            engine, self._completed, self._refused, settings.completion_interval_seconds, full=settings.concurrency
        )
        self.supervisor = Supervisor(metrics.task_failures)
        self.listener = WakeupListener(redis, redis_settings, self.job_types)
        self.draining = False
        self._slot_freed = asyncio.Event()
        #: Set when this process's completions made jobs of our types ready (released children, freed slots).
        self._ready_here = asyncio.Event()
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._busy = 0  # jobs holding a slot (running their handler)
        self._last_claim = -settings.wakeup_claim_interval_seconds  # loop time of the last claim statement
        #: The jobs that finished lately: as many may be claimed ahead of free slots.
        self._finished = RecentFinishes(settings.claim_ahead_seconds, settings.concurrency * CLAIM_AHEAD_PER_SLOT)
        self._job_loggers: dict[str, logging.Logger] = {}
        self.metrics.slots_busy.set_function(lambda: self._busy)  # read when scraped, not set per job
        self._counts = {"completed": 0, "failed": 0}
        self._cpu = health.CpuSampler()
        metrics.slots.set(settings.concurrency)
        metrics.prime(self.job_types)

    def _job_types(self) -> list[str]:
        wanted = self.settings.job_types or list(self.handlers)
        if missing := [t for t in wanted if t not in self.handlers]:
            raise ConfigurationError(f"no handler for job type(s) {missing}; known: {list(self.handlers)}")
        return wanted

    # -- registration and heartbeats ---------------------------------------------------------------------

    async def register(self) -> None:
        new = NewWorker(
            id=self.id, name=self.name, worker_type="python", capabilities=self.job_types,
            max_concurrent_jobs=self.settings.concurrency, host=socket.gethostname(), pid=os.getpid(),
            version=__version__,
        )  # fmt: skip
        await self.engine.workers.register(new)
        log.info(
            "worker %s (%s) registered for %s, %d slots", self.name, self.id, self.job_types, new.max_concurrent_jobs
        )

    async def heartbeat_once(self, *, health_sample: bool = False) -> None:
        """Extend running jobs' leases (stopping those cancelled or lost), refresh liveness, maybe log health."""
        asked = list(self.running.values())
        # Jobs whose result waits in the completer are still ours: their leases must outlive the write.
        async with self.completer.between_writes():
            writing = [HeldJob(job.id, job.attempts) for job in self.completer.held()]
            held = await self.engine.heartbeat([HeldJob(r.job.id, r.job.attempts) for r in asked] + writing)
        # Judge only the jobs we asked about: a job claimed while the heartbeat was in flight is not lost.
        for running in asked:
            if running.job.id not in held:
                self._stop(running, StopReason.LOST)
            elif held[running.job.id]:
                self._stop(running, StopReason.CANCEL)
        status = WorkerStatus.DRAINING if self.draining else WorkerStatus.ACTIVE
        await self._report(status)
        if health_sample:
            await self.engine.workers.log_health(
                self.id, status=status, jobs_in_flight=len(self.running), rss_bytes=health.rss_bytes(),
                cpu_percent=self._cpu.sample(),
            )  # fmt: skip
        await self._liveness(status)
        self.metrics.heartbeat_timestamp.set(time.time())

    async def _report(self, status: WorkerStatus) -> None:
        """Heartbeat row: status and the jobs completed and failed since the last report."""
        completed, failed = self._counts["completed"], self._counts["failed"]
        await self.engine.workers.heartbeat(self.id, status=status, completed=completed, failed=failed)
        self._counts["completed"] -= completed
        self._counts["failed"] -= failed

    async def _liveness(self, status: WorkerStatus) -> None:
        key = f"{self.redis_settings.key_prefix}:worker:{self.id}"
        value = json.dumps({"name": self.name, "status": status, "busy": len(self.running), "pid": os.getpid()})
        ttl = max(1, int(self.settings.heartbeat_interval_seconds * 3))
        try:
            await self.redis.set(key, value, ex=ttl)
        except (RedisError, OSError) as exc:
            log.debug("liveness key not written (Redis down; PostgreSQL heartbeats continue): %s", exc)

    # -- claiming and running ----------------------------------------------------------------------------

    @property
    def free_slots(self) -> int:
        """Jobs this worker may claim now: its free slots, plus those it may claim ahead."""
        return self.settings.concurrency + self._finished.count(time.monotonic()) - len(self.running)

    async def claim_once(self, trigger: str = "poll") -> int:
        """Claim up to the free slots in one statement and start the jobs; the number started."""
        return await self._claim(self.free_slots, trigger)

    async def _claim(self, free: int, trigger: str) -> int:
        """Claim up to ``free`` jobs, as the caller read the free slots once: finishes leave the claim-ahead
        window as the clock moves, so a second reading may be lower than the first, even below zero
        (PostgreSQL refused a negative LIMIT, and the worker process died)."""
        if free <= 0 or self.draining:
            return 0
        self._last_claim = asyncio.get_running_loop().time()
        jobs = await self.engine.claim(self.id, job_types=self.job_types, limit=free)
        self.metrics.claims.labels(trigger).inc()
        now, loop = datetime.now(UTC), asyncio.get_running_loop()
        for job in jobs:
            self.metrics.wait_seconds_of(job.job_type).observe(max(0.0, (now - job.run_at).total_seconds()))
            self._start(job, loop)
        return len(jobs)

    def _start(self, job: JobRow, loop: asyncio.AbstractEventLoop) -> None:
        adapter = logging.LoggerAdapter(self._job_logger(job.job_type), {"job_id": str(job.id)})
        ctx = JobContext(job=job, engine=self.engine, s3=self.s3, log=adapter, loop=loop)
        task = loop.create_task(self._execute(job, ctx), name=f"job-{job.id}")
        self.running[job.id] = Running(job, ctx, task)

    def _job_logger(self, job_type: str) -> logging.Logger:
        """``conveyor.job.<type>``, kept: ``logging.getLogger`` takes the logging module's lock each call."""
        logger = self._job_loggers.get(job_type)
        if logger is None:
            logger = self._job_loggers[job_type] = logging.getLogger(f"conveyor.job.{job_type}")
        return logger

    def _stop(self, running: Running, reason: StopReason) -> None:
        if running.stop_reason is None:
            running.stop_reason = reason
            running.ctx.cancelled.set()
            running.task.cancel()

    async def _execute(self, job: JobRow, ctx: JobContext) -> None:
        outcome = Outcome.UNRECORDED
        started: float | None = None
        try:
            async with self._slots:
                started = self._begin(job)
                outcome = await self._run_handler(job, ctx)
        except asyncio.CancelledError:
            outcome = await self._stopped(job)
        except ConveyorError as exc:
            log.warning("job %s: %s; its outcome is not recorded yet, the lease will bring it back", job.id, exc)
        finally:
            if started is not None:
                self.metrics.run_seconds_of(job.job_type, outcome).observe(time.monotonic() - started)
                self._finished.add(time.monotonic())
                self._busy -= 1
            self.running.pop(job.id, None)
            self._slot_freed.set()

    def _begin(self, job: JobRow) -> float:
        """The job holds a slot now: mark its handler started; when it started."""
        if (running := self.running.get(job.id)) is not None:
            running.started = True
        self._busy += 1
        return time.monotonic()

    async def _run_handler(self, job: JobRow, ctx: JobContext) -> Outcome:
        handler = self.handlers.get(job.job_type)
        assert handler is not None  # only types with handlers are claimed
        try:
            async with asyncio.timeout(job.timeout_ms / 1000):
                result = await handler(ctx)
        except TimeoutError:
            ctx.cancelled.set()
            timeout = f"timed out after {job.timeout_ms / 1000:g}s"
            return await self._fail(Failure(job, timeout, kind=FailureKind.TIMEOUT))
        except RetryLater as later:
            await self.engine.requeue([job], delay_seconds=later.delay_seconds)
            self.metrics.jobs_requeued.labels(job.job_type, "retry_later").inc()
            return Outcome.SNOOZED
        except PermanentFailure as exc:
            return await self._fail(Failure(job, str(exc), kind=FailureKind.PERMANENT, retryable=False))
        except ObjectMissing as exc:
            return await self._object_gone(job, exc)
        except ConveyorError as exc:
            return await self._fail(Failure(job, str(exc), retryable=exc.retriable))
        except Exception as exc:  # noqa: BLE001 - any other handler error is retried under the policy
            return await self._fail(Failure(job, f"{type(exc).__name__}: {exc}"))
        if (where := unstorable(result)) is not None:
            # Retrying would return the same result: fail now, saying why, instead of poisoning the writer.
            message = f"the handler's result cannot be stored in PostgreSQL: {where} holds {_UNSTORABLE}"
            return await self._fail(Failure(job, message, kind=FailureKind.PERMANENT, retryable=False))
        self.completer.add(job, result)
        return Outcome.COMPLETED

    async def _refused(self, job: JobRow, error: DatabaseError) -> None:
        """PostgreSQL refused this job's completion alone: fail the job permanently, saying why."""
        await self._fail(Failure(job, f"the handler's result was refused by PostgreSQL: {error}",
                                 kind=FailureKind.PERMANENT, retryable=False))  # fmt: skip

    async def _object_gone(self, job: JobRow, error: ObjectMissing) -> Outcome:
        """The object was removed before (or while) the job read it: what the user meant, not a failure."""
        where = f"s3://{job.source_bucket}/{job.source_key}" if job.source_key else "its object"
        await self.engine.object_gone(job, f"object removed: {where} no longer exists ({error})")
        self.metrics.jobs_cancelled.labels(job.job_type).inc()
        return Outcome.CANCELLED

    async def _fail(self, failure: Failure) -> Outcome:
        status = await self.engine.fail(failure)
        job_type = failure.job.job_type
        if status is JobStatus.FAILED:
            self.metrics.jobs_failed.labels(job_type).inc()
            self._counts["failed"] += 1
        elif status is not None:
            self.metrics.jobs_retried.labels(job_type, failure.kind).inc()
        return Outcome(failure.kind.value)

    async def _stopped(self, job: JobRow) -> Outcome:
        running = self.running.get(job.id)
        reason = running.stop_reason if running else None
        if reason is StopReason.CANCEL:
            await self.engine.acknowledge_cancel(job)
            self.metrics.jobs_cancelled.labels(job.job_type).inc()
        elif reason is StopReason.SHUTDOWN:
            await self.engine.requeue([job])
            self.metrics.jobs_requeued.labels(job.job_type, "shutdown").inc()
        return STOPPED[reason] if reason else Outcome.CANCELLED

    def _completed(self, jobs: list[JobRow]) -> None:
        now = datetime.now(UTC)
        for job in jobs:
            self.metrics.completed_of(job.job_type).inc()
            if job.object_event_id is not None:
                age = (now - job.created_at).total_seconds()
                self.metrics.upload_to_result_seconds_of(job.job_type).observe(max(0.0, age))
        self._counts["completed"] += len(jobs)

    # -- the process ---------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, then shut down gracefully."""
        await self.register()
        maintenance = MaintenanceLeader(self.engine, self.engine_settings, self.metrics.maintenance)
        self.supervisor.start("wakeup_listener", lambda: self.listener.run(stop))
        self.supervisor.start("heartbeat", lambda: self._heartbeats(stop))
        self.supervisor.start("maintenance", lambda: maintenance.run(stop))
        self.supervisor.start("completer", self.completer.run)
        try:
            with self.engine.watching_completions(self._made_ready_here):
                await self._claim_loop(stop)
        finally:
            await self.shutdown()
            await self.supervisor.close()

    def _made_ready_here(self, job_types: Sequence[str]) -> None:
        if not self._job_type_set.isdisjoint(job_types):
            self._ready_here.set()

    async def _claim_loop(self, stop: asyncio.Event) -> None:
        trigger = "start"
        while not stop.is_set():
            # The claim sees every completion and wake-up sent before it starts; one arriving during it stays
            # set, and the wait below returns at once for it.
            self._ready_here.clear()
            self.listener.event.clear()
            asked = self.free_slots
            try:
                started = await self._claim(asked, trigger)
            except ServiceUnavailable as exc:
                log.warning("claim failed (%s); retrying", exc)
                started = 0
            if started >= asked > 0 and self.free_slots > 0:
                # Only a full claim suggests more are ready right now: after a short one, a claim at once
                # found nothing (at 150 uploads/s, more than half of all claims were those).
                trigger = "backlog"
                continue
            trigger = await self._wait_for_work(stop, within=await self._rate_limit_wait())
            trigger = await self._cool_down(trigger)

    async def _cool_down(self, trigger: str) -> str:
        """Under load, let more work pile up before the next claim, so one claim takes several jobs; the
        trigger of that claim."""
        if trigger == "slot" and self.free_slots < self.settings.concurrency // 2:
            # Let a few more slots free up, so one claim fills several instead of one each.
            await asyncio.sleep(self.settings.claim_cooldown_seconds)
        elif trigger == "wakeup":
            wait = self._last_claim + self.settings.wakeup_claim_interval_seconds - asyncio.get_running_loop().time()
            if wait > 0:  # others' bursts are paced; what our own completions made ready ends the pause
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._ready_here.wait(), wait)
                    return "released"
        return trigger

    async def _rate_limit_wait(self) -> float | None:
        """With free slots left: how soon a rate limit holding back a ready job of ours refills a token."""
        if self.free_slots <= 0:
            return None
        try:
            return await self.engine.flow.rate_wait(self.job_types)
        except ServiceUnavailable:
            return None  # the poll is the correctness path

    async def _wait_for_work(self, stop: asyncio.Event, *, within: float | None = None) -> str:
        """Wait for a wake-up, jobs this process's own completions made ready, a freed slot (when full), the
        jittered poll (or ``within`` seconds, when sooner: a rate limit's next token), or stop; return which."""
        self._slot_freed.clear()
        s = self.settings
        # The poll is the correctness path: wake-ups only make it faster. Jitter keeps workers apart.
        poll = s.poll_interval_seconds * random.uniform(1 - s.poll_jitter, 1 + s.poll_jitter)
        if within is not None:
            poll = min(poll, within)
        if self.free_slots <= 0:
            awaited = {self._slot_freed: "slot"}
        else:  # what our own completions made ready is claimed at once; wake-ups' pacing is for others' bursts
            awaited = {self.listener.event: "wakeup", self._ready_here: "released"}
        tasks = {asyncio.ensure_future(event.wait()): name for event, name in {**awaited, stop: "stop"}.items()}
        done, pending = await asyncio.wait(tasks, timeout=poll, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        return tasks[next(iter(done))] if done else "poll"

    async def _heartbeats(self, stop: asyncio.Event) -> None:
        interval = self.settings.heartbeat_interval_seconds
        sample_every = max(1, round(self.settings.health_log_interval_seconds / interval))
        beats = 0

        async def beat() -> None:
            nonlocal beats
            sample, beats = beats % sample_every == 0, beats + 1  # the first beat samples health
            await self.heartbeat_once(health_sample=sample)

        await every(interval, beat, stop, name="heartbeat")

    async def shutdown(self) -> None:
        """Stop claiming; running jobs get the grace period, then go back to PENDING unrun."""
        self.draining = True
        for waiting in [r for r in self.running.values() if not r.started]:
            self._stop(waiting, StopReason.SHUTDOWN)  # claimed ahead, never started: back to PENDING at once
        if self.running:
            log.info("shutting down: waiting up to %ss for %d running jobs", self.settings.shutdown_grace_seconds,
                     len(self.running))  # fmt: skip
            tasks = [r.task for r in self.running.values()]
            await asyncio.wait(tasks, timeout=self.settings.shutdown_grace_seconds)
            for running in list(self.running.values()):
                self._stop(running, StopReason.SHUTDOWN)
            await asyncio.gather(*(r.task for r in list(self.running.values())), return_exceptions=True)
        await asyncio.wait_for(self.completer.drain(), timeout=60)
        with contextlib.suppress(ConveyorError):
            await self._report(WorkerStatus.DRAINING)
            await self.engine.workers.stop(self.id)
        log.info("worker %s stopped", self.name)
