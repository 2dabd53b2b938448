"""Real file bytes for handler tests, made here (no fixtures checked in)."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import zipfile
from typing import Any

from conveyor.samples import png, zip_of

__all__ = ["PatternStream", "gzip_of", "pdf", "png", "tar_gz_of", "zip_bomb", "zip_of"]


def pdf() -> bytes:
    return (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
            b"trailer<</Root 1 0 R>>\n%%EOF\n")  # fmt: skip


def zip_bomb(members: int = 10, each: int = 50 << 20) -> bytes:
    """Small on disk, huge inflated: ``members`` x ``each`` bytes of zeros."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for i in range(members):
            with archive.open(f"zeros-{i}.bin", "w", force_zip64=True) as member:
                block = b"\0" * (1 << 20)
                for _ in range(each >> 20):
                    member.write(block)
    return buffer.getvalue()


def tar_gz_of(members: dict[str, bytes], *, with_link: bool = True) -> bytes:
    """A tar.gz of regular files, names taken as given; ``with_link`` adds a symlink to /etc/passwd."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        if with_link:
            link = tarfile.TarInfo("link-to-passwd")
            link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
            archive.addfile(link)
    return buffer.getvalue()


def gzip_of(data: bytes) -> bytes:
    return gzip.compress(data)


class PatternStream(io.RawIOBase):
    """``size`` deterministic pseudo-random bytes, produced on the fly, hashing what it hands out."""

    def __init__(self, size: int) -> None:
        self.remaining, self.sha256, self.md5, self._counter = size, hashlib.sha256(), hashlib.md5(), 0

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        size = min(len(target), self.remaining, 1 << 20)
        if size <= 0:
            return 0
        block = hashlib.sha512(self._counter.to_bytes(8, "big")).digest() * (size // 64 + 1)
        data = block[:size]
        self._counter += 1
        target[:size] = data
        self.sha256.update(data)
        self.md5.update(data)
        self.remaining -= size
        return size
