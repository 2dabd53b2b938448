"""The ``s3`` settings section: the object store users upload to."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator

S3_DEFAULT_PORT = 19000
#: The local stack's published secret key: refused when a process serves on any address but loopback.
DEFAULT_SECRET_KEY = "conveyor-secret"


class S3Settings(BaseModel):
    """The S3-compatible object store users upload to (MinIO, versitygw, AWS S3)."""

    endpoint: str = f"http://127.0.0.1:{S3_DEFAULT_PORT}"
    access_key: str = "conveyor"
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET_KEY)
    region: str = "us-east-1"
    #: Buckets that `conveyor bootstrap` creates and subscribes to upload events.
    buckets: list[str] = Field(default_factory=lambda: ["uploads"])
    #: The notification target: MinIO names its Kafka target `arn:minio:sqs::<ID>:kafka`.
    notification_arn: str = "arn:minio:sqs::PRIMARY:kafka"
    notification_id: str = "conveyor"
    #: Only these events reach Kafka. `s3:ObjectCreated:*` would also fire on tagging, which the pipeline does.
    #: Removals cancel the unfinished jobs of what they removed.
    notification_events: list[str] = Field(
        default_factory=lambda: [
            "s3:ObjectCreated:Put",
            "s3:ObjectCreated:Post",
            "s3:ObjectCreated:Copy",
            "s3:ObjectCreated:CompleteMultipartUpload",
            "s3:ObjectRemoved:Delete",
            "s3:ObjectRemoved:DeleteMarkerCreated",
        ]
    )

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value.rstrip("/")

    @property
    def secure(self) -> bool:
        """Whether the endpoint speaks TLS."""
        return urlsplit(self.endpoint).scheme == "https"

    @property
    def netloc(self) -> str:
        """``host:port`` of the endpoint, as the minio client wants it."""
        return urlsplit(self.endpoint).netloc
