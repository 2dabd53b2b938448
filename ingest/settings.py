"""The ``ingest`` section of conveyor's settings (environment: ``CONVEYOR_INGEST__*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field


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
