"""The ``postgres`` section of conveyor's settings (environment: ``CONVEYOR_POSTGRES__*``)."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr, model_validator

#: The private PostgreSQL of the local stack listens here; 5432 is left to a system cluster.
DEFAULT_PORT = 15432
#: The local stack's published password: refused when a process serves on any address but loopback.
DEFAULT_PASSWORD = "conveyor"


class PostgresSettings(BaseModel):
    """Where PostgreSQL is and how many connections each process may hold."""

    host: str = "127.0.0.1"
    port: int = Field(DEFAULT_PORT, ge=1, le=65535)
    user: str = "conveyor"
    password: SecretStr = SecretStr(DEFAULT_PASSWORD)
    database: str = "conveyor"
    pool_min_size: int = Field(1, ge=0)
    pool_max_size: int = Field(10, ge=1)
    #: Seconds to wait for a connection (and for each statement, unless it sets its own).
    connect_timeout_seconds: float = Field(5.0, gt=0)
    command_timeout_seconds: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def _pool_bounds(self) -> PostgresSettings:
        if self.pool_min_size > self.pool_max_size:
            raise ValueError("pool_min_size must not exceed pool_max_size")
        return self

    def dsn(self, database: str | None = None) -> str:
        """A libpq URL for this server, with the password, for ``database`` (default: the configured one)."""
        secret = self.password.get_secret_value()
        return f"postgresql://{self.user}:{secret}@{self.host}:{self.port}/{database or self.database}"
