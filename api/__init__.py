"""The HTTP API: the job service's routes and JSON, object lineage, dead letters, /health and /metrics."""

from __future__ import annotations
