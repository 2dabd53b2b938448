"""The ``stack`` settings section: the native local stack, where it caches builds and keeps its data."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

MINIO_VERSION = (
    "v0.0.0-20260212201848-7aac2a2c5b7c"  # the last commit (2026-02-12); the proxy refuses the last release tag
)
VERSITYGW_VERSION = "v1.7.0"
KAFKA_VERSION = "4.1.1"
#: The Kubernetes tools the chart tests use: helm, built from the Go module proxy, and the CRDs (KEDA, the
#: Prometheus operator) read from those projects' Go modules.
HELM_VERSION = "v4.3.2"
KEDA_VERSION = "v2.21.0"
PROMETHEUS_OPERATOR_VERSION = "v0.88.0"


def _default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "conveyor"


def _default_state_dir() -> Path:
    # PostgreSQL must run as an unprivileged user, who cannot enter root's home: root keeps state in /var/lib.
    if os.geteuid() == 0:
        return Path("/var/lib/conveyor")
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "conveyor"


class StackSettings(BaseModel):
    """The native local stack (`conveyor stack ...`): where it caches builds and keeps its data."""

    #: Downloads and builds, shared by every clone on the machine; `stack reset` leaves it alone.
    cache_dir: Path = Field(default_factory=_default_cache_dir)
    #: Data, logs and pid files of the running stack; `stack reset` removes it.
    state_dir: Path = Field(default_factory=_default_state_dir)
    s3_server: Literal["minio", "versitygw"] = "minio"
    kafka_version: str = KAFKA_VERSION
    kafka_controller_port: int = Field(19093, ge=1, le=65535)
    kafka_heap: str = "768m"
    minio_version: str = MINIO_VERSION
    minio_console_port: int = Field(19001, ge=1, le=65535)
    #: MinIO's on-disk event queue: no event dropped while Kafka is down, but each waits up to 3 s.
    #: Off by default: events leave at once, and the reconciler fills whatever MinIO drops.
    minio_queue_dir: bool = False
    #: Send each event before the PUT returns. With Kafka down a PUT then waits for the producer to give
    #: up (seconds); with the queue dir it waits only for the disk write.
    minio_sync_events: bool = False
    prometheus_port: int = Field(19090, ge=1, le=65535)
    versitygw_version: str = VERSITYGW_VERSION
    helm_version: str = HELM_VERSION
    keda_version: str = KEDA_VERSION
    prometheus_operator_version: str = PROMETHEUS_OPERATOR_VERSION
    #: PostgreSQL durability: off for tests (far faster), on for benchmarks that claim durability.
    postgres_fast_unsafe: bool = True
    ready_timeout_seconds: float = Field(120.0, gt=0)
