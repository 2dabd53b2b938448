"""The one settings object, built once by the CLI from ``CONVEYOR_*`` environment variables.

Sections nest with a double underscore: ``CONVEYOR_POSTGRES__PORT=5433`` sets ``postgres.port``.
Components receive only their own section; nothing but :func:`load` reads the environment.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from db.errors import ConfigurationError
from db.settings import PostgresSettings
from ingest.settings import IngestSettings
from pipeline.settings import (
    ApiSettings,
    EngineSettings,
    KafkaSettings,
    MetricsSettings,
    RedisSettings,
    S3Settings,
    WorkerSettings,
)

ENV_PREFIX = "CONVEYOR_"
ENV_NESTED_DELIMITER = "__"
MASK = "**********"

MINIO_VERSION = (
    "v0.0.0-20260212201848-7aac2a2c5b7c"  # the last commit (2026-02-12); the proxy refuses the last release tag
)
VERSITYGW_VERSION = "v1.7.0"
KAFKA_VERSION = "4.1.1"


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
    prometheus_port: int = Field(19090, ge=1, le=65535)
    versitygw_version: str = VERSITYGW_VERSION
    #: PostgreSQL durability: off for tests (far faster), on for benchmarks that claim durability.
    postgres_fast_unsafe: bool = True
    ready_timeout_seconds: float = Field(120.0, gt=0)


class Settings(BaseSettings):
    """Everything conveyor can be configured with."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        extra="forbid",
        validate_default=True,
    )

    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    s3: S3Settings = Field(default_factory=S3Settings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    stack: StackSettings = Field(default_factory=StackSettings)


def load(**overrides: Any) -> Settings:
    """Build the settings from the environment (and ``overrides``), or raise :class:`ConfigurationError`.

    The error names each offending setting by its environment variable, e.g.
    ``CONVEYOR_POSTGRES__PORT: Input should be less than or equal to 65535 (got '70000')``.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigurationError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem, each naming the environment variable to fix."""
    lines = ["invalid configuration:"]
    for error in exc.errors():
        path = [str(part) for part in error["loc"]]
        variable = ENV_PREFIX + ENV_NESTED_DELIMITER.join(path).upper()
        got = f" (got {error['input']!r})" if not isinstance(error.get("input"), dict) else ""
        lines.append(f"  {variable}: {error['msg']}{got}")
    return "\n".join(lines)


def masked(settings: Settings) -> dict[str, Any]:
    """The effective configuration as plain JSON data, every secret replaced by a mask."""
    data: dict[str, Any] = _mask(json.loads(settings.model_dump_json()), settings)
    return data


def _mask(data: Any, model: Any) -> Any:
    if isinstance(model, SecretStr):
        return MASK
    if isinstance(model, list):
        return [_mask(item, sub) for item, sub in zip(data, model, strict=True)]
    if isinstance(model, BaseModel):
        return {name: _mask(data[name], getattr(model, name)) for name in type(model).model_fields}
    return data
