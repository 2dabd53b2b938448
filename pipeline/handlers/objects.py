"""``object.copy`` and ``object.move``: to another bucket or prefix (``processed/``, ``quarantine/``...).

The copy is server-side and carries metadata and tags naming the job that wrote it, so routing never
feeds on conveyor's own writes. A move deletes the source only after the copy exists.
"""

from __future__ import annotations

from typing import Any

from minio.commonconfig import REPLACE, CopySource, Tags

from conveyor.pipeline.handlers.base import JobContext, PermanentFailure
from conveyor.pipeline.storage.client import translate_s3_errors


async def object_copy(ctx: JobContext) -> dict[str, Any]:
    return await ctx.in_thread(_copy, ctx, False)


async def object_move(ctx: JobContext) -> dict[str, Any]:
    return await ctx.in_thread(_copy, ctx, True)


def _copy(ctx: JobContext, delete_source: bool) -> dict[str, Any]:
    source, params = ctx.source, ctx.params
    bucket = str(params.get("target_bucket") or source.bucket)
    prefix = str(params.get("target_prefix", "processed/"))
    key = prefix + source.key
    if (bucket, key) == (source.bucket, source.key):
        raise PermanentFailure("the target is the source itself: set target_bucket or target_prefix")
    with translate_s3_errors(f"copying s3://{source.bucket}/{source.key} to s3://{bucket}/{key}"):
        stat = ctx.s3.stat_object(source.bucket, source.key, version_id=source.version)
        metadata: dict[str, str | list[str] | tuple[str]] = {**ctx.output_metadata()}
        if stat.content_type:
            metadata["Content-Type"] = stat.content_type
        tags = Tags.new_object_tags()
        tags.update(ctx.output_metadata())
        written = ctx.s3.copy_object(
            bucket, key, CopySource(source.bucket, source.key, version_id=source.version),
            metadata=metadata, metadata_directive=REPLACE, tags=tags,
        )  # fmt: skip
        if delete_source:
            ctx.s3.remove_object(source.bucket, source.key, version_id=source.version)
    return {"target": f"s3://{bucket}/{key}", "etag": written.etag, "version": written.version_id,
            "moved": delete_source}  # fmt: skip
