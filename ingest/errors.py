"""The ingest layer's part of the exception tree."""

from __future__ import annotations

from conveyor.db.errors import ConveyorError


class BadEvent(ConveyorError):
    """A message that cannot become jobs. ``reason`` is a short, bounded label (a metric label, a DLQ header)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class RoutingError(ConveyorError):
    """The pipelines file is invalid."""
