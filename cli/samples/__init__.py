"""The sample uploads `conveyor run` makes on first start: a CSV, a JSON-lines file, an image, a zip.

Made in code (no binaries in the repository); the test suite builds its real file bytes with the same
functions.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from importlib import resources


def png(width: int = 2, height: int = 2) -> bytes:
    """A valid PNG image of ``width`` x ``height`` red pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def zip_of(members: dict[str, bytes], *, links: dict[str, str] | None = None) -> bytes:
    """A zip archive of ``members``; ``links`` adds symbolic-link entries (name -> target)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o120777 << 16  # a symbolic link
            archive.writestr(info, target)
    return buffer.getvalue()


def sample_uploads() -> dict[str, bytes]:
    """Key -> bytes of the sample set."""
    orders = resources.files("conveyor.samples").joinpath("orders.csv").read_bytes()
    events = b'{"event": "signup", "user": 1}\n{"event": "login", "user": 1}\n{"event": "login"}\n'
    return {
        "samples/orders.csv": orders,
        "samples/events.jsonl": events,
        "samples/pixel.png": png(),
        "samples/bundle.zip": zip_of({"readme.txt": b"conveyor sample\n", "data/orders.csv": orders}),
    }
