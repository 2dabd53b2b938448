"""``inspect``: the object's true type from its first bytes, beside what its name and upload claim."""

from __future__ import annotations

import json
import mimetypes
from pathlib import PurePosixPath
from typing import Any

from conveyor.pipeline.handlers.base import JobContext
from conveyor.pipeline.storage.client import translate_s3_errors

SNIFF_BYTES = 8192

# (offset, magic bytes, content type), most specific first.
MAGIC: list[tuple[int, bytes, str]] = [
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"%PDF-", "application/pdf"),
    (0, b"PK\x03\x04", "application/zip"),
    (0, b"PK\x05\x06", "application/zip"),
    (0, b"\x1f\x8b", "application/gzip"),
    (0, b"BZh", "application/x-bzip2"),
    (0, b"\xfd7zXZ\x00", "application/x-xz"),
    (0, b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (0, b"PAR1", "application/vnd.apache.parquet"),
    (257, b"ustar", "application/x-tar"),
]
# Extensions whose expected types mimetypes doesn't know or names differently.
EXTENSIONS = {
    ".jsonl": "application/jsonl", ".ndjson": "application/jsonl", ".csv": "text/csv", ".tgz": "application/gzip",
    ".gz": "application/gzip", ".parquet": "application/vnd.apache.parquet", ".tar": "application/x-tar",
}  # fmt: skip
# Types that are the same thing for the purpose of a mismatch.
EQUIVALENT = {"application/x-zip-compressed": "application/zip", "application/x-gzip": "application/gzip"}
TEXT_FAMILY = {"text/plain", "text/csv", "application/json", "application/jsonl"}


def sniff(head: bytes) -> str:
    """The content type the bytes themselves show; text is told apart as JSON, JSON lines, CSV or plain."""
    for offset, magic, content_type in MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return content_type
    if not head:
        return "application/x-empty"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not merely a character cut off by the sniff window
            return "application/octet-stream"
        text = head[: exc.start].decode("utf-8")
    return _text_type(text)


def _text_type(text: str) -> str:
    lines = [line for line in text.splitlines()[:20] if line.strip()]
    if lines and all(_is_json(line) for line in lines[:-1] or lines):
        return "application/jsonl" if len(lines) > 1 else "application/json"
    if _is_json(text):
        return "application/json"
    if len(lines) >= 2 and len({line.count(",") for line in lines[:-1]}) == 1 and lines[0].count(",") > 0:
        return "text/csv"
    return "text/plain"


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return text.strip()[:1] in {"{", "["}


def expected_from_name(key: str) -> str | None:
    """The type the name's extension promises; None when it promises nothing (no extension, ``.bin``)."""
    suffix = PurePosixPath(key).suffix.lower()
    expected = EXTENSIONS.get(suffix) or mimetypes.types_map.get(suffix)
    return None if expected == "application/octet-stream" else expected


def _same(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return True
    a, b = EQUIVALENT.get(a, a), EQUIVALENT.get(b, b)
    return a == b or ({a, b} <= TEXT_FAMILY and "text/plain" in {a, b})


async def inspect(ctx: JobContext) -> dict[str, Any]:
    source = ctx.source
    head, declared, size = await ctx.in_thread(_head, ctx, source.bucket, source.key, source.version)
    detected = sniff(head)
    by_name = expected_from_name(source.key)
    declared_type = (declared or "").split(";")[0].strip().lower() or None
    problems = []
    if not _same(detected, by_name):
        problems.append(f"the name suggests {by_name} but the bytes are {detected}")
    if declared_type not in {None, "application/octet-stream", "binary/octet-stream"} and not _same(
        detected, declared_type
    ):
        problems.append(f"uploaded as {declared_type} but the bytes are {detected}")
    return {
        "detected_type": detected, "type_from_name": by_name, "declared_type": declared_type, "size": size,
        "mismatch": bool(problems), "problems": problems,
    }  # fmt: skip


def _head(ctx: JobContext, bucket: str, key: str, version: str | None) -> tuple[bytes, str | None, int]:
    with translate_s3_errors(f"reading s3://{bucket}/{key}"):
        stat = ctx.s3.stat_object(bucket, key, version_id=version)
        if not stat.size:
            return b"", stat.content_type, 0
        response = ctx.s3.get_object(bucket, key, length=min(SNIFF_BYTES, stat.size), version_id=version)
        try:
            return response.read(), stat.content_type, int(stat.size)
        finally:
            response.close()
            response.release_conn()
