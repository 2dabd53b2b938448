"""The engine's settings sections: its policies (retry, leases, rescue, retention) and Redis, its wake-up channel."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator

from conveyor.pipeline.engine.retry import RetryPolicies

REDIS_DEFAULT_PORT = 16379


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


class RetentionSettings(BaseModel):
    """How long finished jobs and health samples stay; pruned in small batches so the hot table stays small."""

    completed_after_seconds: float = Field(24 * 3600, gt=0)
    failed_after_seconds: float = Field(7 * 24 * 3600, gt=0)
    health_logs_after_seconds: float = Field(24 * 3600, gt=0)
    stopped_workers_after_seconds: float = Field(7 * 24 * 3600, gt=0)
    #: Recorded upload events (what makes a redelivered notification a duplicate) are kept this long after
    #: their jobs are gone; None keeps them forever. It must exceed the events topic's retention: ingest
    #: refuses to start otherwise, so no offset Kafka can redeliver ever finds its event forgotten.
    events_after_seconds: float | None = Field(None, gt=0)
    #: Finished sweeps and backfills (their progress records); each target's last complete sweep stays.
    sweeps_after_seconds: float = Field(7 * 24 * 3600, gt=0)
    #: A concurrency key's limit that a pipeline or an API call set goes once the key has had no ready or
    #: running job this long (an operator's limits stay until cleared).
    idle_key_limits_after_seconds: float = Field(3600, gt=0)
    batch_size: int = Field(1000, ge=1)
    interval_seconds: float = Field(60.0, gt=0)


class EngineSettings(BaseModel):
    """The job engine's policies, shared by every process that moves jobs."""

    retry: RetryPolicies = Field(default_factory=RetryPolicies)
    #: A claimed job's lease is its timeout plus this grace; heartbeats extend it.
    lease_grace_seconds: float = Field(30.0, gt=0)
    rescue_interval_seconds: float = Field(5.0, gt=0)
    #: How often every process campaigns for the maintenance leadership: a dead leader's successor
    #: takes over within this long.
    leader_campaign_interval_seconds: float = Field(2.0, gt=0)
    #: A worker silent this long is LOST and its jobs are rescued without waiting for their leases.
    worker_lost_after_seconds: float = Field(30.0, gt=0)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
