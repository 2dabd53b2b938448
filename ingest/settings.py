"""The ``ingest`` and ``kafka`` settings sections (environment: ``CONVEYOR_INGEST__*``, ``CONVEYOR_KAFKA__*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator

KAFKA_DEFAULT_PORT = 19092


class IngestSettings(BaseModel):
    """How the ingestor consumes bucket events and turns them into jobs."""

    group_id: str = "conveyor-ingest"
    #: Each batch is read from Kafka at once: at most this many records, gathered for at most this long. It is
    #: one PostgreSQL transaction, or one per lane it is split across (see ``write_lanes``).
    batch_max_records: int = Field(500, ge=1, le=100_000)
    batch_max_wait_ms: int = Field(50, ge=0, le=60_000)
    #: Under a steady flow (a batch came less than this long after the one before), a small batch waits
    #: this long for more records before it is written: at 100 uploads/s each event was otherwise a batch of
    #: its own, with a transaction and a wake-up each. Events further apart than this never wait. 0: off.
    batch_linger_ms: int = Field(20, ge=0, le=10_000)
    #: Batches written at once, each in its own transaction: a partition always goes to the same lane (its
    #: number modulo the lanes), so its events are written and its offsets committed in order. A batch of
    #: fewer than a quarter of ``batch_max_records`` is written whole, by one lane.
    write_lanes: int = Field(4, ge=1, le=16)
    #: Offsets are committed once their batch's transaction has, at most this often (0: after every batch),
    #: and at once when partitions are revoked or the ingestor stops. A crash redelivers at most this long's
    #: batches, found already recorded; each commit costs the broker a write (see ingest/offsets.py).
    commit_interval_seconds: float = Field(1.0, ge=0.0, le=60.0)
    #: A message larger than this is dead-lettered unread.
    max_message_bytes: int = Field(1_048_576, ge=1024)
    #: The routing rules; empty means the rules shipped with conveyor.
    pipelines_file: Path | None = None
    dead_letter_unrouted: bool = False
    max_lineage_depth: int = Field(3, ge=1)
    #: How plain S3 records (no MinIO wrapper) encode keys: "url" (AWS), "raw" (versitygw), or "auto"
    #: (raw for versitygw's records, URL-decoded otherwise). MinIO's records always use its raw Key.
    plain_key_encoding: Literal["auto", "url", "raw"] = "auto"
    #: Two writes of an object with the same etag this close in time are one upload (listings and
    #: notifications carry times at different precisions). A re-upload of identical bytes sooner than
    #: this after the last one is not processed again.
    same_upload_tolerance_seconds: float = Field(2.0, ge=0.0, le=3600.0)


class ReconcileSettings(BaseModel):
    """The reconciler: sweeps that list each bucket and start what no notification brought.

    A full listing costs one LIST request per ``page_size`` objects, paced to ``max_pages_per_second``.
    """

    enabled: bool = True
    #: A full sweep of each bucket (or of each of ``prefixes``) at most this often.
    interval_seconds: float = Field(300.0, ge=1.0)
    #: Objects written more recently are left to their notification; a sweep only fills older gaps
    #: (a backfill takes every object: one whose notification is in flight still starts once).
    grace_seconds: float = Field(30.0, ge=0.0)
    #: Sweep only these prefixes ("bucket/prefix"); empty: every configured bucket, whole.
    prefixes: list[str] = Field(default_factory=list)
    page_size: int = Field(1000, ge=1, le=1000)
    max_pages_per_second: float = Field(20.0, gt=0.0)
    #: How long one leader's turn runs sweeps before it campaigns again (a long sweep resumes next turn).
    slice_seconds: float = Field(10.0, gt=0.0)
    campaign_interval_seconds: float = Field(2.0, gt=0.0)
    #: A sweep's runner holds it this long between pages; past it, another process resumes it.
    lease_seconds: float = Field(30.0, gt=0.0)
    #: Also start pipelines for objects older than when conveyor began watching the bucket (normally
    #: a backfill's job: `conveyor backfill`).
    include_existing: bool = False
    #: MinIO's metrics, read for failed notification sends (an early sweep when they grow), relative to
    #: the S3 endpoint; empty to not read them (other servers).
    server_metrics_path: str = "/minio/v2/metrics/cluster"


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
