"""Job handlers: the registry, and the built-in handlers that process uploaded files."""

from __future__ import annotations

from conveyor.pipeline.handlers.archive import archive_extract
from conveyor.pipeline.handlers.base import HandlerRegistry, JobContext, PermanentFailure, RetryLater
from conveyor.pipeline.handlers.checksum import checksum
from conveyor.pipeline.handlers.csv_profile import csv_profile
from conveyor.pipeline.handlers.inspect import inspect
from conveyor.pipeline.handlers.jsonl_validate import jsonl_validate
from conveyor.pipeline.handlers.objects import object_copy, object_move

__all__ = ["HandlerRegistry", "JobContext", "PermanentFailure", "RetryLater", "builtin_handlers"]


def builtin_handlers() -> HandlerRegistry:
    """A registry with every built-in handler (user modules add theirs with ``register(registry)``)."""
    registry = HandlerRegistry()
    registry.register("checksum", checksum)
    registry.register("inspect", inspect)
    registry.register("csv.profile", csv_profile)
    registry.register("jsonl.validate", jsonl_validate)
    registry.register("archive.extract", archive_extract)
    registry.register("object.copy", object_copy)
    registry.register("object.move", object_move)
    return registry
