"""``archive.extract``: zip and tar(.gz) members become objects under an output prefix, safely.

Refused outright (the job fails, nothing stays written): archives whose member count or expanded size
exceeds the limits (zip bombs; checked against the declared sizes first, then against the bytes
actually inflated), and corrupt archives. Refused per member (listed in the result, never written):
absolute paths, ``..`` components, links and device files. Memory stays bounded: a zip is read by ranged
GETs, a tar as a stream, and members are uploaded in parts.
"""

from __future__ import annotations

import io
import posixpath
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from minio.deleteobjects import DeleteObject

from conveyor.pipeline.handlers.base import JobContext, PermanentFailure
from conveyor.pipeline.handlers.inspect import sniff
from conveyor.pipeline.storage.client import RangeReader, StreamReader, iter_object, translate_s3_errors

PART_BYTES = 16 << 20
DEFAULTS = {"output_prefix": "extracted/", "max_members": 10_000, "max_expanded_bytes": 1 << 30}


@dataclass
class Extraction:
    bucket: str
    prefix: str
    max_members: int
    max_expanded_bytes: int
    written: list[str] = field(default_factory=list)
    refused: list[dict[str, str]] = field(default_factory=list)
    expanded_bytes: int = 0


class TooLarge(Exception):
    pass


async def archive_extract(ctx: JobContext) -> dict[str, Any]:
    source, params = ctx.source, {**DEFAULTS, **ctx.params}
    out = Extraction(
        bucket=str(params.get("output_bucket") or source.bucket),
        prefix=f"{str(params['output_prefix']).rstrip('/')}/{source.key}/",
        max_members=int(params["max_members"]),
        max_expanded_bytes=int(params["max_expanded_bytes"]),
    )
    try:
        kind = await ctx.in_thread(_extract, ctx, out)
    except TooLarge as exc:
        await ctx.in_thread(_remove, ctx, out)
        raise PermanentFailure(f"archive refused: {exc}") from None
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError) as exc:
        await ctx.in_thread(_remove, ctx, out)
        raise PermanentFailure(f"corrupt or unsupported archive: {exc}") from None
    return {
        "format": kind, "members": len(out.written), "expanded_bytes": out.expanded_bytes,
        "output": f"s3://{out.bucket}/{out.prefix}", "written": out.written[:100], "refused": out.refused,
    }  # fmt: skip


def _extract(ctx: JobContext, out: Extraction) -> str:
    source = ctx.source
    with translate_s3_errors(f"reading s3://{source.bucket}/{source.key}"):
        size = int(ctx.s3.stat_object(source.bucket, source.key, version_id=source.version).size or 0)
        head = next(iter_object(ctx.s3, source.bucket, source.key, version=source.version, chunk=512), b"")
    kind = sniff(head.ljust(512, b"\0") if len(head) < 512 else head)
    if kind == "application/zip":
        _extract_zip(ctx, out, io.BufferedReader(RangeReader(ctx.s3, source.bucket, source.key, size)))
        return "zip"
    if kind in {"application/gzip", "application/x-tar", "application/x-bzip2", "application/x-xz"}:
        chunks = iter_object(ctx.s3, source.bucket, source.key, version=source.version)
        _extract_tar(ctx, out, io.BufferedReader(StreamReader(chunks)))
        return "tar"
    raise ValueError(f"not a zip or tar archive (the bytes are {kind})")


def _extract_zip(ctx: JobContext, out: Extraction, file: IO[bytes]) -> None:
    with zipfile.ZipFile(file) as archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        _check_totals(out, len(members), sum(m.file_size for m in members))
        for member in members:
            ctx.check_cancelled()
            reason = _unsafe(member.filename) or ("a symbolic link" if _zip_is_link(member) else None)
            if reason:
                out.refused.append({"name": member.filename, "reason": reason})
                continue
            with archive.open(member) as data:
                _upload(ctx, out, member.filename, data)


def _extract_tar(ctx: JobContext, out: Extraction, stream: IO[bytes]) -> None:
    count = 0
    with tarfile.open(fileobj=stream, mode="r|*") as archive:
        for member in archive:
            ctx.check_cancelled()
            if member.isdir():
                continue
            count += 1
            _check_totals(out, count, out.expanded_bytes + member.size)
            reason = _unsafe(member.name) or (None if member.isfile() else "a link or special file")
            if reason:
                out.refused.append({"name": member.name, "reason": reason})
                continue
            data = archive.extractfile(member)
            if data is not None:
                _upload(ctx, out, member.name, data)


def _check_totals(out: Extraction, members: int, expanded: int) -> None:
    if members > out.max_members:
        raise TooLarge(f"more than {out.max_members} members")
    if expanded > out.max_expanded_bytes:
        raise TooLarge(f"expands to more than {out.max_expanded_bytes} bytes")


def _unsafe(name: str) -> str | None:
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "an absolute path"
    if ".." in name.replace("\\", "/").split("/"):
        return "a path that climbs out of the archive (..)"
    if _relative_key(name) == ".":
        return "an empty name"
    return None


def _relative_key(name: str) -> str:
    """The member's key below the output prefix: ``name`` normalised ("a/./b" is "a/b"), dots kept (".env")."""
    return posixpath.normpath(name)


def _zip_is_link(member: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(member.external_attr >> 16)


class _Limited(io.RawIOBase):
    """Counts inflated bytes as they are read, so a member lying about its size still hits the limit."""

    def __init__(self, data: IO[bytes], out: Extraction) -> None:
        self._data, self._out = data, out

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        chunk = self._data.read(len(target))
        self._out.expanded_bytes += len(chunk)
        if self._out.expanded_bytes > self._out.max_expanded_bytes:
            raise TooLarge(f"inflates to more than {self._out.max_expanded_bytes} bytes")
        target[: len(chunk)] = chunk
        return len(chunk)


def _upload(ctx: JobContext, out: Extraction, name: str, data: IO[bytes]) -> None:
    key = out.prefix + _relative_key(name)
    with translate_s3_errors(f"writing s3://{out.bucket}/{key}"):
        metadata: dict[str, str | list[str] | tuple[str]] = {**ctx.output_metadata()}
        ctx.s3.put_object(out.bucket, key, io.BufferedReader(_Limited(data, out)), length=-1, part_size=PART_BYTES,
                          metadata=metadata)  # fmt: skip
    out.written.append(key)


def _remove(ctx: JobContext, out: Extraction) -> None:
    if out.written:
        errors: Iterator[Any] = ctx.s3.remove_objects(out.bucket, [DeleteObject(key) for key in out.written])
        for error in errors:
            ctx.log.warning("could not remove %s after refusing the archive: %s", error.name, error)
