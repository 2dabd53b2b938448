"""The built-in handlers on real objects in MinIO."""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import io
import logging
import uuid

import pytest
from minio import Minio

from conveyor.db.records import JobFilter
from conveyor.pipeline.engine import Engine
from conveyor.pipeline.handlers.base import JobContext, PermanentFailure
from conveyor.pipeline.handlers.checksum import HASH_BESIDE_FROM_BYTES
from conveyor.pipeline.storage.client import CHUNK_BYTES, object_exists
from tests.integration import samples
from tests.integration.conftest import put_bytes, run_handler


async def test_checksum_of_a_200_mb_multipart_object(engine: Engine, s3: Minio, scratch_bucket: str) -> None:
    stream = samples.PatternStream(200 << 20)
    await asyncio.to_thread(s3.put_object, scratch_bucket, "big/200mb.bin", io.BufferedReader(stream), -1,
                            part_size=16 << 20)  # fmt: skip
    result = await run_handler(engine, s3, "checksum", scratch_bucket, "big/200mb.bin")
    assert result["sha256"] == stream.sha256.hexdigest()
    assert result["md5"] == stream.md5.hexdigest()
    assert result["size"] == 200 << 20
    assert result["etag"].endswith("-13") and result["etag_verified"] is False  # multipart: no MD5 ETag


async def test_checksum_verifies_a_single_part_etag(engine: Engine, s3: Minio, scratch_bucket: str) -> None:
    await put_bytes(s3, scratch_bucket, "small.txt", b"hello")
    result = await run_handler(engine, s3, "checksum", scratch_bucket, "small.txt")
    assert result["md5"] == "5d41402abc4b2a76b9719d911017c592" == result["etag"]
    assert result["etag_verified"] is True


@pytest.mark.parametrize("size", [HASH_BESIDE_FROM_BYTES - 1, HASH_BESIDE_FROM_BYTES, 3 * CHUNK_BYTES + 7])
async def test_checksum_in_place_and_beside_agree_with_the_single_part_etag(
    engine: Engine, s3: Minio, scratch_bucket: str, size: int
) -> None:
    """Below the threshold both digests run in place; from it the MD5 runs in a thread, over one or more chunks."""
    data = hashlib.sha256(str(size).encode()).digest() * (size // 32 + 1)
    await put_bytes(s3, scratch_bucket, "sized.bin", data[:size])
    result = await run_handler(engine, s3, "checksum", scratch_bucket, "sized.bin")
    assert result["sha256"] == hashlib.sha256(data[:size]).hexdigest()
    assert result["md5"] == hashlib.md5(data[:size]).hexdigest() == result["etag"]
    assert result["size"] == size and result["etag_verified"] is True


@pytest.mark.parametrize(
    ("name", "data", "detected", "mismatch"),
    [
        ("a.png", samples.png(), "image/png", False),
        ("report.pdf", samples.pdf(), "application/pdf", False),
        ("table.csv", b"id,name\n1,a\n2,b\n", "text/csv", False),
        ("bundle.zip", samples.zip_of({"a.txt": b"x"}), "application/zip", False),
        ("data.gz", samples.gzip_of(b"hello" * 100), "application/gzip", False),
        ("photo.jpg", samples.png(), "image/png", True),
        ("empty.txt", b"", "application/x-empty", True),
    ],
)
async def test_inspect_finds_the_true_type(
    engine: Engine, s3: Minio, scratch_bucket: str, name: str, data: bytes, detected: str, mismatch: bool
) -> None:
    await put_bytes(s3, scratch_bucket, f"inspect/{name}", data)
    result = await run_handler(engine, s3, "inspect", scratch_bucket, f"inspect/{name}")
    assert result["detected_type"] == detected
    assert result["mismatch"] is mismatch, result["problems"]


async def test_csv_profile_with_quoted_newlines_nulls_and_broken_rows(
    engine: Engine, s3: Minio, scratch_bucket: str
) -> None:
    text = 'id,name,note\n1,"Smith, J.","line one\nline two"\n2,,NULL\n3,only-two\n4,"x","y"\n5,a,b,c\n'
    await put_bytes(s3, scratch_bucket, "people.csv", text.encode())
    result = await run_handler(engine, s3, "csv.profile", scratch_bucket, "people.csv")
    assert result["header"] == ["id", "name", "note"]
    assert result["rows"] == 3
    assert result["nulls"] == {"id": 0, "name": 1, "note": 1}
    assert result["invalid_rows"] == 2 and result["valid"] is False
    assert [(e["line"], e["error"]) for e in result["first_invalid"]] == [
        (5, "expected 3 fields, found 2"),
        (7, "expected 3 fields, found 4"),
    ]


async def test_jsonl_validate_counts_keys_and_reports_bad_lines(engine: Engine, s3: Minio, scratch_bucket: str) -> None:
    text = '{"a": 1, "b": 2}\n\n{"a": 3}\n[1, 2]\n{broken\n{"c": null}\n'
    await put_bytes(s3, scratch_bucket, "events.jsonl", text.encode())
    result = await run_handler(engine, s3, "jsonl.validate", scratch_bucket, "events.jsonl")
    assert result["records"] == 3 and result["blank_lines"] == 1
    assert result["keys"] == {"a": 2, "b": 1, "c": 1}
    assert [e["line"] for e in result["first_invalid"]] == [4, 5]


async def test_archive_extract_writes_members_and_refuses_unsafe_ones(
    engine: Engine, s3: Minio, scratch_bucket: str
) -> None:
    archive = samples.zip_of(
        {"docs/readme.txt": b"hello", "../evil.sh": b"rm -rf /", "/etc/cron.d/x": b"* * * * *", "ok.csv": b"a\n1\n"},
        links={"link": "/etc/passwd"},
    )
    await put_bytes(s3, scratch_bucket, "in/bundle.zip", archive)
    result = await run_handler(engine, s3, "archive.extract", scratch_bucket, "in/bundle.zip")
    assert result["format"] == "zip" and result["members"] == 2
    assert {r["name"] for r in result["refused"]} == {"../evil.sh", "/etc/cron.d/x", "link"}
    stored = s3.get_object(scratch_bucket, "extracted/in/bundle.zip/docs/readme.txt")
    assert stored.read() == b"hello"
    assert stored.headers["x-amz-meta-conveyor-job-id"]
    assert not object_exists(s3, scratch_bucket, "extracted/evil.sh")


async def test_archive_extract_handles_tar_gz(engine: Engine, s3: Minio, scratch_bucket: str) -> None:
    await put_bytes(s3, scratch_bucket, "in/logs.tar.gz", samples.tar_gz_of({"a.log": b"1", "sub/b.log": b"22"}))
    result = await run_handler(engine, s3, "archive.extract", scratch_bucket, "in/logs.tar.gz")
    assert result["format"] == "tar" and result["members"] == 2
    assert result["refused"] == [{"name": "link-to-passwd", "reason": "a link or special file"}]


async def test_a_zip_bomb_is_refused_and_leaves_nothing_behind(engine: Engine, s3: Minio, scratch_bucket: str) -> None:
    await put_bytes(s3, scratch_bucket, "in/bomb.zip", samples.zip_bomb())
    with pytest.raises(PermanentFailure, match="expands to more than"):
        await run_handler(
            engine, s3, "archive.extract", scratch_bucket, "in/bomb.zip", {"max_expanded_bytes": 100 << 20}
        )
    assert list(s3.list_objects(scratch_bucket, prefix="extracted/in/bomb.zip/", recursive=True)) == []


async def test_a_corrupt_zip_fails_permanently(engine: Engine, s3: Minio, scratch_bucket: str) -> None:
    await put_bytes(s3, scratch_bucket, "in/corrupt.zip", b"PK\x03\x04" + b"garbage" * 100)
    with pytest.raises(PermanentFailure, match="corrupt"):
        await run_handler(engine, s3, "archive.extract", scratch_bucket, "in/corrupt.zip")


async def test_copy_and_move(engine: Engine, s3: Minio, scratch_bucket: str) -> None:
    await put_bytes(s3, scratch_bucket, "in/a.txt", b"copy me")
    await put_bytes(s3, scratch_bucket, "in/b.txt", b"move me")
    copied = await run_handler(engine, s3, "object.copy", scratch_bucket, "in/a.txt", {"target_prefix": "processed/"})
    moved = await run_handler(engine, s3, "object.move", scratch_bucket, "in/b.txt", {"target_prefix": "quarantine/"})
    assert copied["target"] == f"s3://{scratch_bucket}/processed/in/a.txt"
    assert s3.get_object(scratch_bucket, "processed/in/a.txt").read() == b"copy me"
    assert object_exists(s3, scratch_bucket, "in/a.txt")
    assert moved["moved"] and not object_exists(s3, scratch_bucket, "in/b.txt")
    tags = s3.get_object_tags(scratch_bucket, "quarantine/in/b.txt")
    assert tags is not None and "conveyor-job-id" in tags


async def test_csv_profile_resumes_from_its_checkpoint_with_the_same_totals(
    engine: Engine, s3: Minio, scratch_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv_profile = importlib.import_module("conveyor.pipeline.handlers.csv_profile")  # the module, not the handler
    monkeypatch.setattr(csv_profile, "CHECKPOINT_EVERY_BYTES", 4096)
    rows = b"".join(b'%d,"name %d",%s\n' % (i, i, b"" if i % 7 else b"x") for i in range(20_000))
    await put_bytes(s3, scratch_bucket, "resume/big.csv", b"id,name,flag\n" + rows + b"1,2\n")
    first = await run_handler(engine, s3, "csv.profile", scratch_bucket, "resume/big.csv")
    (job,) = await engine.list_jobs(JobFilter(source_key="resume/big.csv"), limit=1)
    saved = await engine.last_checkpoint(job.id)
    assert saved["offset"] > 0 and saved["rows"] > 0

    # The attempt is lost after its checkpoints; the next attempt resumes from the last one.
    await engine.requeue([job])
    (again,) = await engine.claim(uuid.uuid4(), job_types=["csv.profile"])
    ctx = JobContext(job=again, engine=engine, s3=s3, log=logging.LoggerAdapter(logging.getLogger("test"), {}))
    second = await csv_profile.csv_profile(ctx)
    assert second["resumed_from_byte"] == saved["offset"] > 0
    assert {k: second[k] for k in ("rows", "nulls", "invalid_rows")} == {
        k: first[k] for k in ("rows", "nulls", "invalid_rows")
    }
    assert first["rows"] == 20_000 and first["invalid_rows"] == 1 and first["nulls"]["flag"] == 20_000 - 2858
