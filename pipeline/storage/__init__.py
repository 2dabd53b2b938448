"""S3 access: the client, streaming reads, object existence and metadata, and the ``s3`` settings."""

from __future__ import annotations
