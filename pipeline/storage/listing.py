"""Listing a bucket a page at a time, and reading what a listing leaves out (for the reconciler).

Synchronous minio-py calls: callers run them in a thread. A page is ``limit`` entries from one LIST
request (ListObjectsV2, or ListObjectVersions on a versioned bucket), resumable from its cursor.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from itertools import islice

from minio import Minio
from minio.datatypes import Object
from minio.error import S3Error

from conveyor.db.records import ListedObject
from conveyor.pipeline.engine.errors import ObjectMissing
from conveyor.pipeline.storage.client import translate_s3_errors

#: minio-py's spelling of an unversioned object's version in a version listing.
NULL_VERSION = "null"
#: What servers without versioning answer to GetBucketVersioning.
VERSIONING_UNSUPPORTED_CODES = frozenset({"VersioningNotConfigured", "NotImplemented"})


@dataclass(frozen=True)
class ListedPage:
    objects: list[ListedObject]
    #: Where the next page starts (exclusive); None when this page was the last.
    cursor: str | None


@dataclass(frozen=True)
class ObjectDetails:
    """What a HEAD tells beyond the listing: what routing needs."""

    etag: str | None
    size: int | None
    modified_at: datetime | None
    content_type: str | None
    user_metadata: dict[str, str]


def is_versioned(client: Minio, bucket: str) -> bool:
    """Whether the bucket keeps versions (enabled, or suspended with versions kept).

    A server without versioning (versitygw's default gateway) answers with an error: not versioned.
    """
    with translate_s3_errors(f"reading the versioning of {bucket}"):
        try:
            status = client.get_bucket_versioning(bucket).status
        except S3Error as exc:
            if exc.code in VERSIONING_UNSUPPORTED_CODES:
                return False
            raise
    return status in {"Enabled", "Suspended"}


def list_page(client: Minio, bucket: str, *, prefix: str, after: str | None, limit: int, versions: bool) -> ListedPage:
    """Up to ``limit`` objects of ``bucket`` under ``prefix``, in key order, after key ``after``.

    With ``versions``, every version of each key (delete markers left out). A version page's cursor is
    the last key whose versions it holds in full, so a resumed listing never skips a version: a key cut
    across two pages is listed again from its first version (the sweep's dedupe makes that harmless).
    """
    with translate_s3_errors(f"listing s3://{bucket}/{prefix}"):
        listing = client.list_objects(bucket, prefix=prefix or None, recursive=True, start_after=after,
                                      include_version=versions)  # fmt: skip
        entries = list(islice(listing, limit + 1 if versions else limit))
    more = len(entries) > limit if versions else len(entries) == limit
    if versions and more:
        last_key = entries[limit].object_name
        entries = [e for e in entries[:limit] if e.object_name != last_key]
        if not entries:  # one key with more versions than a page holds: take them all
            return _all_versions(client, bucket, last_key, prefix)
    objects = [_listed(e) for e in entries if not e.is_delete_marker and not e.is_dir]
    cursor = entries[-1].object_name if more and entries else None
    return ListedPage(objects, cursor)


def _all_versions(client: Minio, bucket: str, key: str, prefix: str) -> ListedPage:
    with translate_s3_errors(f"listing the versions of s3://{bucket}/{key}"):
        entries = [e for e in client.list_objects(bucket, prefix=key, include_version=True) if e.object_name == key]
    return ListedPage([_listed(e) for e in entries if not e.is_delete_marker], key)


def _listed(entry: Object) -> ListedObject:
    version = entry.version_id or ""
    assert entry.object_name is not None and entry.last_modified is not None  # always set in a listing
    return ListedObject(
        key=entry.object_name,
        version_id="" if version == NULL_VERSION else version,
        etag=entry.etag.strip('"') if entry.etag else None,
        size=entry.size,
        modified_at=entry.last_modified,
    )


def object_details(client: Minio, bucket: str, key: str, version_id: str = "") -> ObjectDetails | None:
    """HEAD the object: its content type and user metadata; None when it is gone (deleted since)."""
    try:
        with translate_s3_errors(f"reading s3://{bucket}/{key}"):
            stat = client.stat_object(bucket, key, version_id=version_id or None)
    except ObjectMissing:
        return None
    metadata = {k: v for k, v in (stat.metadata or {}).items() if k.lower().startswith("x-amz-meta-")}
    return ObjectDetails(
        etag=stat.etag.strip('"') if stat.etag else None, size=stat.size, modified_at=stat.last_modified,
        content_type=stat.content_type, user_metadata=metadata,
    )  # fmt: skip
