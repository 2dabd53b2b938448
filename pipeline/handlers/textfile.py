"""Reading a text object line by line from a byte offset, knowing the offset of every line boundary.

The offset is what makes a checkpoint resumable: a retried attempt asks S3 for the bytes from there.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any, Protocol, TypeVar

from conveyor.pipeline.handlers.base import JobContext
from conveyor.pipeline.storage.client import StreamReader, iter_object

#: Save progress every this many bytes, so a retry of a large file loses at most this much work.
CHECKPOINT_EVERY_BYTES = 32 << 20
DEFAULT_MAX_INVALID = 20


class Progress(Protocol):
    """A handler's resumable state: a dataclass whose fields are what a checkpoint saves."""

    offset: int
    resumed_from: int

    def __init__(self, **fields: Any) -> None: ...


P = TypeVar("P", bound=Progress)


async def resume(ctx: JobContext, progress: type[P]) -> P:
    """The state the last attempt checkpointed (noting where this attempt resumes), or a fresh one."""
    saved = await ctx.last_checkpoint()
    if not saved:
        return progress()
    restored = progress(**saved)
    restored.resumed_from = restored.offset
    return restored


def max_invalid(ctx: JobContext) -> int:
    """How many invalid rows a result lists (param ``max_invalid_rows``)."""
    return int(ctx.params.get("max_invalid_rows", DEFAULT_MAX_INVALID))


class Lines:
    """Decoded lines (with their line ends) of an object from ``offset``; ``offset`` advances per line."""

    def __init__(self, ctx: JobContext, offset: int, line_number: int) -> None:
        source = ctx.source
        chunks = iter_object(ctx.s3, source.bucket, source.key, offset=offset, version=source.version)
        self._raw = io.BufferedReader(StreamReader(chunks), buffer_size=1 << 20)
        self._ctx = ctx
        self.offset, self.line_number, self.decode_errors = offset, line_number, 0

    def __iter__(self) -> Iterator[str]:
        while line := self._raw.readline():
            self._ctx.check_cancelled()
            self.offset += len(line)
            self.line_number += 1
            try:
                yield line.decode("utf-8")
            except UnicodeDecodeError:
                self.decode_errors += 1
                yield line.decode("utf-8", errors="replace")

    def close(self) -> None:
        self._raw.close()
