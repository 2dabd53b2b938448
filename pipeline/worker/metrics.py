"""The worker's Prometheus metrics, on an explicit registry (each test builds its own)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from conveyor.pipeline.lifecycle.metric_children import MetricChildren
from conveyor.pipeline.lifecycle.tasks import task_failures_counter
from conveyor.pipeline.maintenance.metrics import MaintenanceMetrics

DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)


class WorkerMetrics:
    """Labels are bounded: job type and outcome only, never a job id or an object key."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.jobs_completed = Counter(
            "conveyor_jobs_completed_total", "Jobs completed by this process.", ["job_type"], registry=registry
        )
        self.jobs_failed = Counter(
            "conveyor_jobs_failed_total", "Jobs that ended FAILED (retries exhausted or not retryable).",
            ["job_type"], registry=registry,
        )  # fmt: skip
        self.jobs_retried = Counter(
            "conveyor_jobs_retried_total", "Failed attempts that will be retried after a backoff.",
            ["job_type", "kind"], registry=registry,
        )  # fmt: skip
        self.jobs_cancelled = Counter(
            "conveyor_jobs_cancelled_total", "Running jobs stopped on request.", ["job_type"], registry=registry
        )
        self.jobs_requeued = Counter(
            "conveyor_jobs_requeued_total", "Jobs handed back unrun (shutdown) or snoozed (RetryLater).",
            ["job_type", "reason"], registry=registry,
        )  # fmt: skip
        self.wait_seconds = Histogram(
            "conveyor_job_wait_seconds", "From ready (run_at) to claimed.", ["job_type"],
            buckets=DURATION_BUCKETS, registry=registry,
        )  # fmt: skip
        self.run_seconds = Histogram(
            "conveyor_job_run_seconds", "Handler run time per attempt.", ["job_type", "outcome"],
            buckets=DURATION_BUCKETS, registry=registry,
        )  # fmt: skip
        self.upload_to_result_seconds = Histogram(
            "conveyor_upload_to_result_seconds",
            "From a pipeline job's creation by the ingestor (milliseconds after the upload) to its result.",
            ["job_type"], buckets=DURATION_BUCKETS, registry=registry,
        )  # fmt: skip
        self.slots = Gauge("conveyor_worker_slots", "Jobs this process may run at once.", registry=registry)
        self.slots_busy = Gauge("conveyor_worker_slots_busy", "Jobs running in this process now.", registry=registry)
        self.heartbeat_timestamp = Gauge(
            "conveyor_worker_last_heartbeat_timestamp_seconds", "When this process last heartbeat (Unix time).",
            registry=registry,
        )  # fmt: skip
        self.task_failures = task_failures_counter(registry)
        self.maintenance = MaintenanceMetrics(registry)
        self.claims = Counter(
            "conveyor_worker_claims_total", "Claim statements run, by what woke the claim loop.", ["trigger"],
            registry=registry,
        )  # fmt: skip

        # The children the worker reaches for on every job (see MetricChildren).
        self.completed_of = MetricChildren(self.jobs_completed)
        self.wait_seconds_of = MetricChildren(self.wait_seconds)
        self.run_seconds_of = MetricChildren(self.run_seconds)
        self.upload_to_result_seconds_of = MetricChildren(self.upload_to_result_seconds)

    def prime(self, job_types: list[str]) -> None:
        """Create every known label combination at zero, so dashboards and alerts see series from the start."""
        for job_type in job_types:
            for counter in (self.jobs_completed, self.jobs_failed, self.jobs_cancelled):
                counter.labels(job_type)
            for kind in ("error", "timeout"):
                self.jobs_retried.labels(job_type, kind)
        for trigger in ("start", "wakeup", "released", "poll", "slot", "backlog"):
            self.claims.labels(trigger)
