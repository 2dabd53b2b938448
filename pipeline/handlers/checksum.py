"""``checksum``: SHA-256 and MD5 of the object, streamed; the MD5 is checked against a single-part ETag.

The two digests run in two threads over the same chunks (hashlib releases the GIL), so on two cores
hashing both costs about as much as hashing one. The ETag comes from the same GET as the bytes, so a
concurrent overwrite cannot pair one version's digest with another version's ETag.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from conveyor.pipeline.handlers.base import JobContext, PermanentFailure
from conveyor.pipeline.storage.client import CHUNK_BYTES, translate_s3_errors


async def checksum(ctx: JobContext) -> dict[str, Any]:
    source = ctx.source
    sha256, md5, size, etag = await ctx.in_thread(_digest, ctx, source.bucket, source.key, source.version)
    multipart = "-" in etag
    result = {"sha256": sha256, "md5": md5, "size": size, "etag": etag, "etag_verified": not multipart}
    if not multipart and etag.lower() != md5:
        raise PermanentFailure(f"MD5 {md5} does not match the ETag {etag}: the stored object is not what was uploaded")
    return result


def _digest(ctx: JobContext, bucket: str, key: str, version: str | None) -> tuple[str, str, int, str]:
    sha256, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    with ThreadPoolExecutor(max_workers=1) as pool, translate_s3_errors(f"reading s3://{bucket}/{key}"):
        response = ctx.s3.get_object(bucket, key, version_id=version)
        try:
            etag = (response.headers.get("ETag") or "").strip('"')
            pending: Future[None] | None = None
            for chunk in response.stream(CHUNK_BYTES):
                ctx.check_cancelled()
                if pending is not None:
                    pending.result()
                pending = pool.submit(md5.update, chunk)
                sha256.update(chunk)
                size += len(chunk)
            if pending is not None:
                pending.result()
        finally:
            response.close()
            response.release_conn()
    return sha256.hexdigest(), md5.hexdigest(), size, etag
