"""Hostile archives against archive.extract on MinIO: every assertion would fail if anything were written
outside the job's output prefix, or if a refused archive left a member behind."""

from __future__ import annotations

import io
import struct
import uuid
import zipfile

import pytest
from minio import Minio

from conveyor.pipeline.engine import Engine
from conveyor.pipeline.handlers.base import PermanentFailure
from conveyor.samples import zip_of
from tests.integration import samples
from tests.integration.conftest import put_bytes, run_handler

PREFIX = "extracted/"
RUN = uuid.uuid4().hex[:12]

#: Names that climb out, start at a root or a drive, in every position and with either separator.
UNSAFE = [
    "../escape.txt", "a/../../escape.txt", "a/b/../../../escape.txt", "a/..", "..",
    "..\\escape.txt", "a\\..\\..\\escape.txt", "a/..\\..\\escape.txt",
    "/etc/passwd", "\\windows\\system32\\evil.dll", "C:\\evil.txt", "C:evil.txt", "c:/evil.txt",
]  # fmt: skip
#: Names that look odd and are perfectly safe: they are written, under the prefix.
SAFE = [
    "...",
    ".env",
    "..hidden",
    "a..b/c..d.txt",
    "./dots/.rc",
    "back\\slash.txt",
    "ünï/東京.txt",
    "deep/er/deeper.bin",
]
#: Where each safe member lands below the prefix: normalised, its dots kept.
LANDS = {name: name.removeprefix("./") for name in SAFE}


def tar_of(members: dict[str, bytes]) -> bytes:
    return samples.tar_gz_of(members, with_link=False)


def every_key(s3: Minio, bucket: str) -> set[str]:
    return {str(o.object_name) for o in s3.list_objects(bucket, recursive=True)}


async def extract(
    engine: Engine, s3: Minio, bucket: str, name: str, data: bytes, **params: object
) -> tuple[object, set[str]]:
    """Upload ``data`` as ``hostile/<run>/<name>``, run archive.extract on it; its result and every key it added."""
    key = f"hostile/{RUN}/{name}"
    await put_bytes(s3, bucket, key, data)
    before = every_key(s3, bucket)
    try:
        result: object = await run_handler(engine, s3, "archive.extract", bucket, key, dict(params))
    except PermanentFailure as exc:
        result = exc
    return result, every_key(s3, bucket) - before


async def test_unsafe_names_in_every_position_are_refused_and_safe_odd_names_land_under_the_prefix(
    engine: Engine, s3: Minio, scratch_bucket: str
) -> None:
    archive = zip_of({name: name.encode() for name in UNSAFE + SAFE})
    result, added = await extract(engine, s3, scratch_bucket, "names.zip", archive)
    assert isinstance(result, dict), result
    assert sorted(r["name"] for r in result["refused"]) == sorted(UNSAFE)
    prefix = f"{PREFIX}hostile/{RUN}/names.zip/"
    assert added == {prefix + LANDS[name] for name in SAFE}, "exactly the safe members, each under the job's prefix"
    for name in SAFE:
        assert s3.get_object(scratch_bucket, prefix + LANDS[name]).read() == name.encode()


async def test_the_same_names_in_a_tar_are_refused_alike(engine: Engine, s3: Minio, scratch_bucket: str) -> None:
    archive = tar_of({name: name.encode() for name in UNSAFE + SAFE})
    result, added = await extract(engine, s3, scratch_bucket, "names.tar.gz", archive)
    assert isinstance(result, dict), result
    assert sorted(r["name"] for r in result["refused"]) == sorted(UNSAFE)
    assert all(key.startswith(f"{PREFIX}hostile/{RUN}/names.tar.gz/") for key in added) and len(added) == len(SAFE)


def lying_zip(declared: int, actual: int) -> bytes:
    """A zip whose headers say its member ``liar.bin`` is ``declared`` bytes while it inflates to ``actual``."""
    honest = io.BytesIO()
    with zipfile.ZipFile(honest, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("fine.txt", b"first, a fine member")
        archive.writestr("liar.bin", b"\0" * actual)
    data = bytearray(honest.getvalue())
    # (signature, offset of the uncompressed size, of the name length, of the name): local header, central entry
    for signature, size_at, length_at, name_at in ((b"PK\x03\x04", 22, 26, 30), (b"PK\x01\x02", 24, 28, 46)):
        start = data.find(signature)
        while start != -1:
            (length,) = struct.unpack_from("<H", data, start + length_at)
            if bytes(data[start + name_at : start + name_at + length]) == b"liar.bin":
                struct.pack_into("<I", data, start + size_at, declared)
            start = data.find(signature, start + 4)
    return bytes(data)


async def test_a_member_whose_headers_lie_about_its_size_is_refused_and_nothing_stays(
    engine: Engine, s3: Minio, scratch_bucket: str
) -> None:
    """The headers claim 1 KiB under a 1 MiB limit; the member inflates to 64 MiB. zipfile stops at the declared
    size and the CRC no longer matches: the archive is refused and the member extracted before it removed."""
    result, added = await extract(engine, s3, scratch_bucket, "liar.zip", lying_zip(1024, 64 << 20),
                                  max_expanded_bytes=1 << 20)  # fmt: skip
    assert isinstance(result, PermanentFailure) and "corrupt" in str(result), result
    assert added == set(), "the fine member written first was removed with the refusal"


async def test_a_tar_bomb_is_refused_from_its_headers_before_inflating(
    engine: Engine, s3: Minio, scratch_bucket: str
) -> None:
    bomb = tar_of({f"zeros-{i}.bin": b"\0" * (8 << 20) for i in range(3)})
    result, added = await extract(engine, s3, scratch_bucket, "bomb.tar.gz", bomb,
                                  max_expanded_bytes=10 << 20)  # fmt: skip
    assert isinstance(result, PermanentFailure) and "expands to more than" in str(result), result
    assert added == set(), "members written before the limit was reached are removed"


@pytest.mark.parametrize("kind", ["zip", "tar"])
async def test_the_member_count_limit_refuses_the_archive_whole(
    kind: str, engine: Engine, s3: Minio, scratch_bucket: str
) -> None:
    members = {f"m{i}.txt": b"x" for i in range(6)}
    data = zip_of(members) if kind == "zip" else tar_of(members)
    result, added = await extract(engine, s3, scratch_bucket, f"many.{kind}", data, max_members=5)
    assert isinstance(result, PermanentFailure) and "more than 5 members" in str(result), result
    assert added == set()
