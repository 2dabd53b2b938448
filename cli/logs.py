"""How every conveyor process logs: one line per record on stderr, as text or as JSON (``CONVEYOR_LOG__FORMAT``).

Records about a job (a handler's ``ctx.log``, the worker's own lines about it) carry ``job_id``: text
lines end with ``job_id=…``, JSON lines have it as a field, so one job's story is one grep away.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel

TEXT_FORMAT = "%(asctime)s %(levelname)-5s %(name)s: %(message)s"
#: Record attributes that carry context worth keeping in every line.
CONTEXT_FIELDS = ("job_id",)


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class LogSettings(BaseModel):
    """The ``log`` settings section."""

    format: LogFormat = LogFormat.TEXT
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class TextFormatter(logging.Formatter):
    """The classic line, with the record's context (``job_id=…``) at its end."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(f"{name}={getattr(record, name)}" for name in CONTEXT_FIELDS if hasattr(record, name))
        return f"{line} {context}" if context else line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context fields, and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        entry.update({name: getattr(record, name) for name in CONTEXT_FIELDS if hasattr(record, name)})
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(settings: LogSettings, *, verbose: bool = False) -> None:
    """Send every record to stderr in the configured format (``verbose``: DEBUG, whatever the level)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.format is LogFormat.JSON else TextFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else settings.level)
