"""Concurrency-key templates: how a pipeline job's key is made from the upload that starts it.

A template is text with placeholders, checked when the pipelines file loads::

    concurrency_key = "{bucket}/{prefix1}"     # one key per bucket and top-level folder (a tenant)
    concurrency_key = "ocr"                    # one key for every job of the template (a shared service)

Placeholders: ``{bucket}``, ``{pipeline}``, ``{job_type}``, ``{prefixN}`` (the object key's first N
``/``-separated folders, N from 1 to 9; fewer when the key has fewer), and ``{metadata.NAME}`` (a user
metadata value, '' when absent).
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from conveyor.ingest.events import UploadEvent
from conveyor.pipeline.engine.dag import MAX_CONCURRENCY_KEY_LENGTH

_FIXED = frozenset({"bucket", "pipeline", "job_type"})
_PREFIX = re.compile(r"prefix([1-9])")
_METADATA = re.compile(r"metadata\.([A-Za-z0-9_-]+)")


def template_problem(template: str) -> str | None:
    """What is wrong with a key template, or None."""
    try:
        fields = [name for _, name, spec, conversion in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        return f"concurrency_key {template!r}: {exc}"
    for name in fields:
        if name not in _FIXED and not _PREFIX.fullmatch(name) and not _METADATA.fullmatch(name):
            return (f"concurrency_key {template!r}: unknown placeholder {{{name}}} (use {{bucket}}, {{pipeline}}, "
                    "{job_type}, {prefix1}..{prefix9} or {metadata.NAME})")  # fmt: skip
    if not template.isprintable():
        return f"concurrency_key {template!r} must not contain control characters"
    return None


@dataclass(frozen=True)
class KeyTemplate:
    """A checked template; :meth:`render` makes the key of one job (cut to the longest key allowed)."""

    template: str

    def render(self, event: UploadEvent, *, pipeline: str, job_type: str) -> str:
        values = _Values(event, pipeline=pipeline, job_type=job_type)
        rendered = _WholeNames().vformat(self.template, (), values)
        return "".join(ch for ch in rendered if ch.isprintable())[:MAX_CONCURRENCY_KEY_LENGTH]


class _WholeNames(string.Formatter):
    """Looks a placeholder up by its whole name: ``metadata.plan`` is one name, not an attribute access."""

    def get_field(self, field_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple[Any, str]:
        return kwargs[field_name], field_name


class _Values(dict[str, str]):
    """The placeholders' values for one event, looked up lazily by name."""

    def __init__(self, event: UploadEvent, *, pipeline: str, job_type: str) -> None:
        super().__init__(bucket=event.bucket, pipeline=pipeline, job_type=job_type)
        self._event = event

    def __missing__(self, name: str) -> str:
        if prefix := _PREFIX.fullmatch(name):
            folders = self._event.key.split("/")[:-1]
            return "/".join(folders[: int(prefix.group(1))])
        if metadata := _METADATA.fullmatch(name):
            return self._event.metadata(metadata.group(1)) or ""
        raise KeyError(name)
