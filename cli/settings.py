"""The one settings object, built once by the CLI from ``CONVEYOR_*`` environment variables.

Sections nest with a double underscore: ``CONVEYOR_POSTGRES__PORT=5433`` sets ``postgres.port``.
Components receive only their own section; nothing but :func:`load` reads the environment.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from conveyor.api.settings import DEFAULT_TOKEN, ApiSettings
from conveyor.db.errors import ConfigurationError
from conveyor.db.settings import DEFAULT_PASSWORD, PostgresSettings
from conveyor.ingest.settings import IngestSettings, KafkaSettings, ReconcileSettings
from conveyor.logs import LogSettings
from conveyor.pipeline.engine.settings import EngineSettings, RedisSettings
from conveyor.pipeline.storage.settings import DEFAULT_SECRET_KEY, S3Settings
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
    reconcile: ReconcileSettings = Field(default_factory=ReconcileSettings)
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


def default_secrets_in_use(settings: Settings) -> list[str]:
    """The environment variables of every secret still at its published default (fine on loopback only)."""
    defaults = {
        "CONVEYOR_API__TOKENS": any(t.get_secret_value() == DEFAULT_TOKEN for t in settings.api.tokens),
        "CONVEYOR_API__READ_ONLY_TOKENS": any(
            t.get_secret_value() == DEFAULT_TOKEN for t in settings.api.read_only_tokens
        ),
        "CONVEYOR_S3__SECRET_KEY": settings.s3.secret_key.get_secret_value() == DEFAULT_SECRET_KEY,
        "CONVEYOR_POSTGRES__PASSWORD": settings.postgres.password.get_secret_value() == DEFAULT_PASSWORD,
    }
    return [variable for variable, is_default in defaults.items() if is_default]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve anywhere


def refuse_exposed_defaults(settings: Settings, host: str, what: str) -> None:
    """Raise :class:`ConfigurationError` if ``what`` would listen beyond loopback with a published secret."""
    if is_loopback(host):
        return
    if exposed := default_secrets_in_use(settings):
        raise ConfigurationError(
            f"{what} would listen on {host}, beyond this machine, while these secrets still have their published "
            f"defaults: {', '.join(exposed)}. Set them, or listen on 127.0.0.1."
        )


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
