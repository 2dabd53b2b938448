"""The ``ingest`` and ``kafka`` settings sections (environment: ``CONVEYOR_INGEST__*``, ``CONVEYOR_KAFKA__*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator

KAFKA_DEFAULT_PORT = 19092


class IngestSettings(BaseModel):
    """How the ingestor consumes bucket events and turns them into jobs."""

    group_id: str = "conveyor-ingest"
    #: Each batch is one PostgreSQL transaction: at most this many records, gathered for at most this long.
    batch_max_records: int = Field(500, ge=1, le=100_000)
    batch_max_wait_ms: int = Field(50, ge=0, le=60_000)
    #: A message larger than this is dead-lettered unread.
    max_message_bytes: int = Field(1_048_576, ge=1024)
    #: The routing rules; empty means the rules shipped with conveyor.
    pipelines_file: Path | None = None
    dead_letter_unrouted: bool = False
    max_lineage_depth: int = Field(3, ge=1)
    #: How plain S3 records (no MinIO wrapper) encode keys: "url" (AWS), "raw" (versitygw), or "auto"
    #: (raw for versitygw's records, URL-decoded otherwise). MinIO's records always use its raw Key.
    plain_key_encoding: Literal["auto", "url", "raw"] = "auto"


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
