"""The ingestor's Prometheus metrics, on an explicit registry (each test builds its own)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: Every reason a message can be dead-lettered for (ingest.errors.BadEvent.reason).
DEAD_LETTER_REASONS = (
    "too_large", "not_json", "schema", "undecodable_key", "unrouted", "lineage_depth_exceeded", "database_rejected",
)  # fmt: skip
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class IngestMetrics:
    """Counters by bounded labels only (reason, pipeline, job type): never a key or an id."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events_consumed = Counter(
            "conveyor_ingest_events_consumed_total", "Upload events read from Kafka and parsed.", registry=registry
        )
        self.messages_consumed = Counter(
            "conveyor_ingest_messages_consumed_total", "Kafka messages read from the events topic.", registry=registry
        )
        self.jobs_created = Counter(
            "conveyor_ingest_jobs_created_total", "Jobs created from upload events.", ["pipeline"], registry=registry
        )
        self.duplicates = Counter(
            "conveyor_ingest_duplicate_events_total",
            "Events already recorded (a MinIO re-send or a redelivered offset): nothing created.",
            registry=registry,
        )
        self.unrouted = Counter(
            "conveyor_ingest_unrouted_events_total", "Events no pipeline matched.", registry=registry
        )
        self.foreign_skipped = Counter(
            "conveyor_ingest_foreign_bucket_events_total",
            "Events of buckets this deployment is not configured for (CONVEYOR_S3__BUCKETS): skipped, not recorded.",
            registry=registry,
        )
        self.outputs_skipped = Counter(
            "conveyor_ingest_pipeline_outputs_skipped_total",
            "Events for objects conveyor's own jobs wrote, which no rule asked for (loop safety).",
            registry=registry,
        )
        self.dead_lettered = Counter(
            "conveyor_ingest_dead_letters_total",
            "Messages sent to the dead-letter topic.",
            ["reason"],
            registry=registry,
        )
        self.batch_size = Histogram(
            "conveyor_ingest_batch_messages",
            "Messages per ingest batch (one PostgreSQL transaction each).",
            buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
            registry=registry,
        )
        self.event_to_job_seconds = Histogram(
            "conveyor_ingest_event_to_job_seconds",
            "From the event's time (as the S3 server stamped it) to its jobs being committed.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "conveyor_ingest_batch_duration_seconds",
            "Time to turn one batch into committed jobs.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "conveyor_ingest_consumer_lag_messages",
            "Messages in the partition not yet consumed by this ingestor.",
            ["topic", "partition"],
            registry=registry,
        )
        self.same_upload = Counter(
            "conveyor_ingest_same_upload_events_total",
            "New events of an upload already recorded (a late notification after a sweep, or the reverse): "
            "nothing created.",
            registry=registry,
        )
        self.removals = Counter(
            "conveyor_ingest_removal_events_total", "Object removal events recorded.", registry=registry
        )
        self.jobs_cancelled_by_removal = Counter(
            "conveyor_ingest_jobs_cancelled_by_removal_total",
            "Unfinished jobs cancelled (or asked to stop) because their object was removed.",
            registry=registry,
        )
        self.database_retries = Counter(
            "conveyor_ingest_database_retries_total",
            "Batches retried because PostgreSQL was unavailable (offsets held back meanwhile).",
            registry=registry,
        )
        self.offset_commits = Counter(
            "conveyor_ingest_offset_commits_total",
            "Offset commits sent to Kafka, each covering every batch written since the one before.",
            registry=registry,
        )

    def prime(self, pipelines: list[str]) -> None:
        """Create every known label combination at zero, so dashboards and alerts see series from the start."""
        for pipeline in pipelines:
            self.jobs_created.labels(pipeline)
        for reason in DEAD_LETTER_REASONS:
            self.dead_lettered.labels(reason)


SWEEP_KINDS = ("reconcile", "backfill")
SWEEP_OUTCOMES = ("completed", "failed", "lost")


class ReconcileMetrics:
    """The reconciler's and backfills' figures, labelled by bucket (configured, so bounded) and kind."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.objects_listed = Counter(
            "conveyor_reconcile_objects_listed_total", "Objects listed by sweeps and backfills.",
            ["bucket", "kind"], registry=registry,
        )  # fmt: skip
        self.objects_missing = Counter(
            "conveyor_reconcile_objects_missing_total",
            "Objects a reconcile sweep found with no recorded upload: notifications that never arrived.",
            ["bucket"], registry=registry,
        )  # fmt: skip
        self.objects_started = Counter(
            "conveyor_reconcile_objects_started_total", "Objects whose pipelines a sweep or backfill started.",
            ["bucket", "kind"], registry=registry,
        )  # fmt: skip
        self.list_requests = Counter(
            "conveyor_reconcile_list_requests_total", "LIST requests sent to the S3 server.", ["bucket"],
            registry=registry,
        )  # fmt: skip
        self.head_requests = Counter(
            "conveyor_reconcile_head_requests_total", "HEAD requests for objects found missing (routing inputs).",
            ["bucket"], registry=registry,
        )  # fmt: skip
        self.sweeps = Counter(
            "conveyor_reconcile_sweeps_total", "Sweeps and backfills ended, by outcome.", ["kind", "outcome"],
            registry=registry,
        )  # fmt: skip
        self.sweep_seconds = Histogram(
            "conveyor_reconcile_sweep_duration_seconds", "From a sweep's start to its completion.", ["kind"],
            buckets=(0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14400), registry=registry,
        )  # fmt: skip
        self.backfill_remaining = Gauge(
            "conveyor_backfill_remaining_objects", "Objects the running backfills have yet to list.",
            registry=registry,
        )  # fmt: skip
        self.leader = Gauge(
            "conveyor_reconcile_leader", "1 while this process runs the cluster's sweeps.", registry=registry
        )
        self.server_failed_sends = Gauge(
            "conveyor_reconcile_server_failed_notifications",
            "Notifications the S3 server reports it failed to send (MinIO's minio_notify_target_failed_events).",
            registry=registry,
        )  # fmt: skip

    def prime(self, buckets: list[str]) -> None:
        for bucket in buckets:
            self.objects_missing.labels(bucket)
            self.list_requests.labels(bucket)
            for kind in SWEEP_KINDS:
                self.objects_listed.labels(bucket, kind)
                self.objects_started.labels(bucket, kind)
        for kind in SWEEP_KINDS:
            self.sweep_seconds.labels(kind)
            for outcome in SWEEP_OUTCOMES:
                self.sweeps.labels(kind, outcome)
