"""``csv.profile``: rows, header, columns, per-column empty counts, and the first invalid rows by line.

A malformed file is a result listing its problems, not a failed job. Quoted fields may span lines.
Progress is checkpointed at row boundaries, so a retried attempt on a large file resumes where it was.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, field
from typing import Any

from conveyor.pipeline.handlers.base import JobContext
from conveyor.pipeline.handlers.textfile import CHECKPOINT_EVERY_BYTES, Lines, max_invalid, resume

NULLS = frozenset({"", "null", "na", "n/a", "none"})


@dataclass
class CsvProgress:
    """Everything needed to continue from ``offset``: the state a checkpoint saves."""

    offset: int = 0
    line_number: int = 0
    header: list[str] = field(default_factory=list)
    rows: int = 0
    nulls: list[int] = field(default_factory=list)
    invalid_rows: int = 0
    first_invalid: list[dict[str, Any]] = field(default_factory=list)
    decode_errors: int = 0
    resumed_from: int = 0


async def csv_profile(ctx: JobContext) -> dict[str, Any]:
    progress = await resume(ctx, CsvProgress)
    progress = await ctx.in_thread(_profile, ctx, progress, max_invalid(ctx))
    return {
        "rows": progress.rows,
        "header": progress.header,
        "columns": len(progress.header),
        "nulls": dict(zip(progress.header, progress.nulls, strict=True)),
        "invalid_rows": progress.invalid_rows,
        "first_invalid": progress.first_invalid,
        "decode_errors": progress.decode_errors,
        "resumed_from_byte": progress.resumed_from,
        "valid": progress.invalid_rows == 0 and progress.decode_errors == 0 and bool(progress.header),
    }


def _profile(ctx: JobContext, p: CsvProgress, max_invalid: int) -> CsvProgress:
    lines = Lines(ctx, p.offset, p.line_number)
    reader = csv.reader(iter(lines), strict=True)
    next_checkpoint, decode_errors_before = p.offset + CHECKPOINT_EVERY_BYTES, p.decode_errors
    try:
        while True:
            first_line = lines.line_number + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                _invalid(p, first_line, f"malformed CSV: {exc}", max_invalid)
                continue
            _count(p, row, first_line, max_invalid)
            p.offset, p.line_number = lines.offset, lines.line_number
            p.decode_errors = decode_errors_before + lines.decode_errors
            if p.offset >= next_checkpoint:
                ctx.checkpoint_from_thread(asdict(p))
                next_checkpoint = p.offset + CHECKPOINT_EVERY_BYTES
    finally:
        lines.close()
    p.decode_errors = decode_errors_before + lines.decode_errors
    return p


def _count(p: CsvProgress, row: list[str], line: int, max_invalid: int) -> None:
    if not p.header:
        p.header, p.nulls = row, [0] * len(row)
        return
    if not row:
        return  # a blank line
    if len(row) != len(p.header):
        _invalid(p, line, f"expected {len(p.header)} fields, found {len(row)}", max_invalid)
        return
    p.rows += 1
    for i, value in enumerate(row):
        if value.strip().lower() in NULLS:
            p.nulls[i] += 1


def _invalid(p: CsvProgress, line: int, error: str, max_invalid: int) -> None:
    p.invalid_rows += 1
    if len(p.first_invalid) < max_invalid:
        p.first_invalid.append({"line": line, "error": error})
