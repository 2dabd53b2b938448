"""The sections of conveyor's settings that the pipeline layer consumes.

Each component receives its own section; only the CLI builds the whole object
(:class:`conveyor.settings.Settings`) and reads the environment.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator

from pipeline.retry import RetryPolicies

KAFKA_DEFAULT_PORT = 19092
REDIS_DEFAULT_PORT = 16379
S3_DEFAULT_PORT = 19000


class RedisSettings(BaseModel):
    """Redis carries liveness keys and wake-ups; it never holds the only copy of anything."""

    url: str = f"redis://127.0.0.1:{REDIS_DEFAULT_PORT}/0"
    #: Every Redis call gives up after this long, so a dead Redis slows conveyor down but never stalls it.
    timeout_seconds: float = Field(1.0, gt=0)
    key_prefix: str = "conveyor"

    @field_validator("url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if urlsplit(value).scheme not in {"redis", "rediss", "unix"}:
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value


class KafkaSettings(BaseModel):
    """The Kafka cluster and the topics conveyor reads and writes."""

    bootstrap_servers: str = f"127.0.0.1:{KAFKA_DEFAULT_PORT}"
    events_topic: str = "conveyor.events"
    dead_letter_topic: str = "conveyor.events.dlq"
    events_partitions: int = Field(4, ge=1)
    dead_letter_partitions: int = Field(1, ge=1)
    replication_factor: int = Field(1, ge=1)
    client_id: str = "conveyor"
    request_timeout_seconds: float = Field(10.0, gt=0)

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_port_list(cls, value: str) -> str:
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"{server!r} is not host:port")
        return value


class S3Settings(BaseModel):
    """The S3-compatible object store users upload to (MinIO, versitygw, AWS S3)."""

    endpoint: str = f"http://127.0.0.1:{S3_DEFAULT_PORT}"
    access_key: str = "conveyor"
    secret_key: SecretStr = SecretStr("conveyor-secret")
    region: str = "us-east-1"
    #: Buckets that `conveyor bootstrap` creates and subscribes to upload events.
    buckets: list[str] = Field(default_factory=lambda: ["uploads"])
    #: The notification target: MinIO names its Kafka target `arn:minio:sqs::<ID>:kafka`.
    notification_arn: str = "arn:minio:sqs::PRIMARY:kafka"
    notification_id: str = "conveyor"
    #: Only these events reach Kafka. `s3:ObjectCreated:*` would also fire on tagging, which the pipeline does.
    notification_events: list[str] = Field(
        default_factory=lambda: [
            "s3:ObjectCreated:Put",
            "s3:ObjectCreated:Post",
            "s3:ObjectCreated:Copy",
            "s3:ObjectCreated:CompleteMultipartUpload",
        ]
    )

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value.rstrip("/")

    @property
    def secure(self) -> bool:
        """Whether the endpoint speaks TLS."""
        return urlsplit(self.endpoint).scheme == "https"

    @property
    def netloc(self) -> str:
        """``host:port`` of the endpoint, as the minio client wants it."""
        return urlsplit(self.endpoint).netloc


class WorkerSettings(BaseModel):
    """How a worker process claims and runs jobs."""

    concurrency: int = Field(8, ge=1, le=1024)
    job_types: list[str] = Field(default_factory=list)
    #: Fallback poll when no wake-up arrives; jittered by ±`poll_jitter` so workers don't synchronise.
    poll_interval_seconds: float = Field(1.0, gt=0)
    poll_jitter: float = Field(0.2, ge=0, le=1)
    #: When full, wait this long after a slot frees before claiming, so one claim fills several slots.
    claim_cooldown_seconds: float = Field(0.005, ge=0, le=1)
    heartbeat_interval_seconds: float = Field(5.0, gt=0)
    #: A worker_health_logs row (status, jobs in flight, RSS, CPU) this often.
    health_log_interval_seconds: float = Field(30.0, gt=0)
    shutdown_grace_seconds: float = Field(30.0, ge=0)
    #: Modules whose register(registry) adds user handlers, e.g. ["myco.handlers"].
    handler_modules: list[str] = Field(default_factory=list)
    #: Autoscaling (`conveyor worker --autoscale MIN:MAX`): add a process when the ready backlog per
    #: process stays above this for `autoscale_patience` checks; retire one after as many idle checks.
    autoscale_backlog_per_process: int = Field(50, ge=1)
    autoscale_interval_seconds: float = Field(5.0, gt=0)
    autoscale_patience: int = Field(2, ge=1)


class RetentionSettings(BaseModel):
    """How long finished jobs and health samples stay; pruned in small batches so the hot table stays small."""

    completed_after_seconds: float = Field(24 * 3600, gt=0)
    failed_after_seconds: float = Field(7 * 24 * 3600, gt=0)
    health_logs_after_seconds: float = Field(24 * 3600, gt=0)
    stopped_workers_after_seconds: float = Field(7 * 24 * 3600, gt=0)
    batch_size: int = Field(1000, ge=1)
    interval_seconds: float = Field(60.0, gt=0)


class EngineSettings(BaseModel):
    """The job engine's policies, shared by every process that moves jobs."""

    retry: RetryPolicies = Field(default_factory=RetryPolicies)
    #: A claimed job's lease is its timeout plus this grace; heartbeats extend it.
    lease_grace_seconds: float = Field(30.0, gt=0)
    rescue_interval_seconds: float = Field(5.0, gt=0)
    #: A worker silent this long is LOST and its jobs are rescued without waiting for their leases.
    worker_lost_after_seconds: float = Field(30.0, gt=0)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)


class ApiSettings(BaseModel):
    """The HTTP API."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    #: Bearer tokens allowed to read and write, and tokens allowed only to read.
    tokens: list[SecretStr] = Field(default_factory=lambda: [SecretStr("dev-token")])
    read_only_tokens: list[SecretStr] = Field(default_factory=list)
    max_body_bytes: int = Field(1_048_576, ge=1024)
    #: /health and /metrics answer without a token unless this is set.
    protect_health_and_metrics: bool = False
    #: How often the API refreshes the queue-depth, worker and dead-letter gauges it exports.
    cluster_metrics_interval_seconds: float = Field(5.0, gt=0)


class MetricsSettings(BaseModel):
    """The Prometheus endpoint each process serves."""

    enabled: bool = True
    host: str = "127.0.0.1"
    #: 0 picks a free port; the worker and ingestor log the one they bound.
    port: int = Field(0, ge=0, le=65535)
    namespace: Literal["conveyor"] = "conveyor"
