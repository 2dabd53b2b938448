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
from dataclasses import dataclass

from conveyor.ingest.events import UploadEvent
from conveyor.pipeline.engine.dag import MAX_CONCURRENCY_KEY_LENGTH

_FIXED = frozenset({"bucket", "pipeline", "job_type"})
_PREFIX = re.compile(r"prefix([1-9])")
_METADATA = re.compile(r"metadata\.([A-Za-z0-9_-]+)")
_PLACEHOLDERS = "{bucket}, {pipeline}, {job_type}, {prefix1}..{prefix9} or {metadata.NAME}"


@dataclass(frozen=True)
class _Part:
    """A template's literal text, then the placeholder after it (``kind`` '' at the end)."""

    literal: str
    kind: str = ""  # "bucket", "pipeline", "job_type", "prefix" or "metadata"
    argument: str = ""  # the prefix's depth, or the metadata name


@dataclass(frozen=True)
class KeyTemplate:
    """A template parsed once, when the pipelines file loads; :meth:`render` makes one job's key."""

    parts: tuple[_Part, ...]

    @classmethod
    def parse(cls, template: str) -> KeyTemplate:
        """The parsed template, or ``ValueError`` saying what is wrong with it."""
        if not template.isprintable():
            raise ValueError(f"concurrency_key {template!r} must not contain control characters")
        try:
            pieces = list(string.Formatter().parse(template))
        except ValueError as exc:
            raise ValueError(f"concurrency_key {template!r}: {exc}") from None
        return cls(tuple(_part(template, literal, name) for literal, name, _, _ in pieces))

    def render(self, event: UploadEvent, *, pipeline: str, job_type: str) -> str:
        """The key for ``event`` (control characters a value brings dropped, cut to the longest key allowed)."""
        fixed = {"bucket": event.bucket, "pipeline": pipeline, "job_type": job_type}
        out = []
        for part in self.parts:
            out.append(part.literal)
            if part.kind == "prefix":
                out.append("/".join(event.key.split("/")[:-1][: int(part.argument)]))
            elif part.kind == "metadata":
                out.append(event.metadata(part.argument) or "")
            elif part.kind:
                out.append(fixed[part.kind])
        return "".join(ch for ch in "".join(out) if ch.isprintable())[:MAX_CONCURRENCY_KEY_LENGTH]


def _part(template: str, literal: str, name: str | None) -> _Part:
    if name is None:
        return _Part(literal)
    if name in _FIXED:
        return _Part(literal, name)
    if prefix := _PREFIX.fullmatch(name):
        return _Part(literal, "prefix", prefix.group(1))
    if metadata := _METADATA.fullmatch(name):
        return _Part(literal, "metadata", metadata.group(1))
    raise ValueError(f"concurrency_key {template!r}: unknown placeholder {{{name}}} (use {_PLACEHOLDERS})")
