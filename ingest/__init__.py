"""Ingest: bucket events from Kafka become jobs in PostgreSQL, exactly once per upload.

Parsing (``events``), routing rules (``routing``), the event store (``store``), dead letters and the
consumer loop. Talks to PostgreSQL only through the engine's transactions.
"""

from __future__ import annotations
