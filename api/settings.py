"""The ``api`` settings section."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr

#: The published development token: refused on any address but loopback.
DEFAULT_TOKEN = "dev-token"


class ApiSettings(BaseModel):
    """The HTTP API."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    #: Bearer tokens allowed to read and write, and tokens allowed only to read.
    tokens: list[SecretStr] = Field(default_factory=lambda: [SecretStr(DEFAULT_TOKEN)])
    read_only_tokens: list[SecretStr] = Field(default_factory=list)
    max_body_bytes: int = Field(1_048_576, ge=1024)
    #: /health and /metrics answer without a token unless this is set.
    protect_health_and_metrics: bool = False
    #: How often the API refreshes the queue-depth, worker and dead-letter gauges it exports, and the
    #: console's traffic of the last hour.
    cluster_metrics_interval_seconds: float = Field(5.0, gt=0)
    #: How often a side task checks PostgreSQL, Redis, Kafka and the object store for /health.
    health_check_interval_seconds: float = Field(2.0, gt=0, le=300)
    #: How long a console sign-in lasts (the cookie is refused after it, and whenever its token is removed).
    console_session_hours: float = Field(12.0, gt=0, le=24 * 30)
