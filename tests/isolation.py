"""What the suite creates in the shared local stack, so it can remove all of it at the end.

The services are the user's own (`make run` uses the same ones): every bucket, consumer group and database
a test makes is named after this session and removed when the session ends; the session then checks that
none is left. The suite's uploads go to its own bucket (``CONVEYOR_S3__BUCKETS``), never to ``uploads``.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import DeleteGroupsRequest
from minio import Minio
from minio.deleteobjects import DeleteObject

from conveyor.settings import Settings

SESSION = uuid.uuid4().hex[:8]
SUITE_BUCKET = f"conveyor-test-{SESSION}"
SCRATCH_BUCKET = f"conveyor-scratch-{SESSION}"

BUCKETS: set[str] = {SCRATCH_BUCKET}
GROUPS: set[str] = set()


def claim_suite_bucket() -> None:
    """Make the suite's bucket this process's only one, before any settings are built: every test and every
    `conveyor` process the suite starts inherits it. Only a test session calls it (benchmarks, which import
    these helpers too, keep the configured buckets)."""
    os.environ.setdefault("CONVEYOR_S3__BUCKETS", json.dumps([SUITE_BUCKET]))


def group(kind: str) -> str:
    """A consumer group name of this session, removed at its end."""
    name = f"{kind}-{SESSION}-{uuid.uuid4().hex[:6]}"
    GROUPS.add(name)
    return name


def bucket(kind: str) -> str:
    name = f"{kind}-{SESSION}-{uuid.uuid4().hex[:6]}"
    BUCKETS.add(name)
    return name


def remove_buckets(client: Minio, names: Iterable[str]) -> list[str]:
    """Empty and remove each existing bucket of ``names``; the ones that still exist afterwards."""
    for name in names:
        if not client.bucket_exists(name):
            continue
        # Every version (and delete marker): a versioned bucket is not empty while any remains.
        listing = client.list_objects(name, recursive=True, include_version=True)
        keys = [DeleteObject(str(o.object_name), o.version_id) for o in listing]
        for error in client.remove_objects(name, keys):
            raise RuntimeError(f"could not remove s3://{name}/{error.name}: {error}")
        client.remove_bucket(name)
    return [name for name in names if client.bucket_exists(name)]


async def remove_groups(settings: Settings, names: Iterable[str]) -> list[str]:
    """Delete the consumer groups of ``names`` that exist; the ones still listed afterwards."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers)
    await admin.start()
    try:
        existing = {g[0] for g in await admin.list_consumer_groups()}
        for name in sorted(set(names) & existing):
            # aiokafka has no public verb for DeleteGroups: send the protocol request to the group's coordinator.
            coordinator = await admin.find_coordinator(name)
            await admin._send_request(DeleteGroupsRequest([name]), coordinator)
        return sorted(set(names) & {g[0] for g in await admin.list_consumer_groups()})
    finally:
        await admin.close()


def clean_up(settings: Settings, client: Minio) -> list[str]:
    """Remove everything this session created; a description of whatever could not be removed."""
    left = [f"bucket {b}" for b in remove_buckets(client, sorted(BUCKETS | {SUITE_BUCKET}))]
    left += [f"consumer group {g}" for g in asyncio.run(remove_groups(settings, GROUPS))]
    return left
