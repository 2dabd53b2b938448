"""The one settings object, built once by the CLI from ``CONVEYOR_*`` environment variables.

Sections nest with a double underscore: ``CONVEYOR_POSTGRES__PORT=5433`` sets ``postgres.port``.
Components receive only their own section; nothing but :func:`load` reads the environment.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from conveyor.api.settings import ApiSettings
from conveyor.db.errors import ConfigurationError
from conveyor.db.settings import PostgresSettings
from conveyor.ingest.settings import IngestSettings, KafkaSettings
from conveyor.logs import LogSettings
from conveyor.pipeline.engine.settings import EngineSettings, RedisSettings
from conveyor.pipeline.storage.settings import S3Settings
from conveyor.pipeline.worker.settings import WorkerSettings
from conveyor.stack.settings import StackSettings

ENV_PREFIX = "CONVEYOR_"
ENV_NESTED_DELIMITER = "__"
MASK = "**********"


class MetricsSettings(BaseModel):
    """The Prometheus endpoint each process serves."""

    enabled: bool = True
    host: str = "127.0.0.1"
    #: 0 picks a free port; the worker and ingestor log the one they bound.
    port: int = Field(0, ge=0, le=65535)
    namespace: Literal["conveyor"] = "conveyor"


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
    log: LogSettings = Field(default_factory=LogSettings)


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
