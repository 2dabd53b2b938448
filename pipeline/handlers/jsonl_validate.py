"""``jsonl.validate``: every line a JSON object; counts of lines and top-level keys; the first bad lines.

A malformed file is a result listing its problems, not a failed job. Checkpointed like csv.profile.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from conveyor.pipeline.handlers.base import JobContext
from conveyor.pipeline.handlers.textfile import CHECKPOINT_EVERY_BYTES, Lines, max_invalid, resume

MAX_DISTINCT_KEYS = 1000


@dataclass
class JsonlProgress:
    offset: int = 0
    line_number: int = 0
    records: int = 0
    blank_lines: int = 0
    keys: dict[str, int] = field(default_factory=dict)
    invalid_lines: int = 0
    first_invalid: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: int = 0


async def jsonl_validate(ctx: JobContext) -> dict[str, Any]:
    progress = await resume(ctx, JsonlProgress)
    progress = await ctx.in_thread(_validate, ctx, progress, max_invalid(ctx))
    return {
        "records": progress.records,
        "blank_lines": progress.blank_lines,
        "keys": progress.keys,
        "invalid_lines": progress.invalid_lines,
        "first_invalid": progress.first_invalid,
        "resumed_from_byte": progress.resumed_from,
        "valid": progress.invalid_lines == 0,
    }


def _validate(ctx: JobContext, p: JsonlProgress, max_invalid: int) -> JsonlProgress:
    lines = Lines(ctx, p.offset, p.line_number)
    next_checkpoint = p.offset + CHECKPOINT_EVERY_BYTES
    try:
        for line in lines:
            _check(p, line, lines.line_number, max_invalid)
            p.offset, p.line_number = lines.offset, lines.line_number
            if p.offset >= next_checkpoint:
                ctx.checkpoint_from_thread(asdict(p))
                next_checkpoint = p.offset + CHECKPOINT_EVERY_BYTES
    finally:
        lines.close()
    return p


def _check(p: JsonlProgress, line: str, number: int, max_invalid: int) -> None:
    if not line.strip():
        p.blank_lines += 1
        return
    try:
        value = json.loads(line)
    except ValueError as exc:
        _invalid(p, number, str(exc), max_invalid)
        return
    if not isinstance(value, dict):
        _invalid(p, number, f"a JSON {type(value).__name__}, not an object", max_invalid)
        return
    p.records += 1
    for key in value:
        if key in p.keys or len(p.keys) < MAX_DISTINCT_KEYS:
            p.keys[key] = p.keys.get(key, 0) + 1


def _invalid(p: JsonlProgress, number: int, error: str, max_invalid: int) -> None:
    p.invalid_lines += 1
    if len(p.first_invalid) < max_invalid:
        p.first_invalid.append({"line": number, "error": error})
