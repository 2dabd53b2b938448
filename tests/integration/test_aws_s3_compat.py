"""The same handlers against AWS S3's API (moto in server mode): only the endpoint changes."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Iterator

import pytest
from minio import Minio
from minio.commonconfig import ENABLED
from minio.versioningconfig import VersioningConfig
from moto.server import ThreadedMotoServer
from prometheus_client import CollectorRegistry

from conveyor.db.records import JobFilter
from conveyor.ingest.events import parse_message
from conveyor.ingest.metrics import ReconcileMetrics
from conveyor.ingest.reconciler import Reconciler
from conveyor.ingest.routing import load_rules, route
from conveyor.ingest.store import Positioned, store_events
from conveyor.pipeline.engine import Engine
from conveyor.pipeline.storage.client import s3_client
from conveyor.pipeline.storage.settings import S3Settings
from conveyor.settings import Settings
from tests.events import aws_message
from tests.integration import samples
from tests.integration.conftest import put_bytes, run_handler


@pytest.fixture(scope="module")
def moto_s3() -> Iterator[S3Settings]:
    """AWS S3's API on a free port (moto in server mode), with one bucket."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        settings = S3Settings(endpoint=f"http://127.0.0.1:{port}", access_key="testing", secret_key="testing")
        s3_client(settings).make_bucket("aws-bucket")
        yield settings
    finally:
        server.stop()


@pytest.fixture(scope="module")
def aws(moto_s3: S3Settings) -> Minio:
    return s3_client(moto_s3)


async def test_handlers_run_unchanged_against_aws_s3(engine: Engine, aws: Minio) -> None:
    await put_bytes(aws, "aws-bucket", "in/data.csv", b"id,v\n1,\n2,x\n")
    await put_bytes(aws, "aws-bucket", "in/image.png", samples.png())
    await put_bytes(aws, "aws-bucket", "in/bundle.zip", samples.zip_of({"a.txt": b"A", "../bad": b"B"}))

    checksum = await run_handler(engine, aws, "checksum", "aws-bucket", "in/data.csv")
    assert checksum["etag_verified"] and checksum["md5"] == checksum["etag"]
    assert (await run_handler(engine, aws, "inspect", "aws-bucket", "in/image.png"))["detected_type"] == "image/png"
    profile = await run_handler(engine, aws, "csv.profile", "aws-bucket", "in/data.csv")
    assert (profile["rows"], profile["nulls"]) == (2, {"id": 0, "v": 1})
    extracted = await run_handler(engine, aws, "archive.extract", "aws-bucket", "in/bundle.zip")
    assert extracted["members"] == 1 and extracted["refused"][0]["name"] == "../bad"
    copied = await run_handler(engine, aws, "object.copy", "aws-bucket", "in/data.csv", {"target_prefix": "done/"})
    assert copied["target"] == "s3://aws-bucket/done/in/data.csv"
    assert aws.get_object("aws-bucket", "done/in/data.csv").read() == b"id,v\n1,\n2,x\n"


async def test_sweeps_of_aws_s3_start_each_upload_and_version_once_and_a_late_notification_nothing(
    engine: Engine, aws: Minio, moto_s3: S3Settings, settings: Settings
) -> None:
    aws.make_bucket("aws-versioned")
    aws.set_bucket_versioning("aws-versioned", VersioningConfig(ENABLED))
    s3 = moto_s3.model_copy(update={"buckets": ["aws-bucket", "aws-versioned"]})
    for key in ("swept/a.csv", "swept/b.csv"):
        await put_bytes(aws, "aws-bucket", key, b"id\n1\n")
    for content in (b"id\n1\n", b"id\n2\n"):
        await put_bytes(aws, "aws-versioned", "v.csv", content)
    reconcile = settings.reconcile.model_copy(update={"grace_seconds": 0.0, "include_existing": True,
                                                      "server_metrics_path": ""})  # fmt: skip
    made = Reconciler(
        engine, aws, load_rules(None), s3, settings.ingest, reconcile, ReconcileMetrics(CollectorRegistry())
    )
    try:
        assert await made.run_once()
    finally:
        await made.leadership.resign()
    jobs = await engine.list_jobs(JobFilter(), limit=100)
    started = Counter((j.source_bucket, j.source_key, j.source_version, j.pipeline) for j in jobs)
    versions = {o.version_id for o in aws.list_objects("aws-versioned", include_version=True)}
    assert len(versions) == 2 and {v for (_, key, v, _) in started if key == "v.csv"} == versions
    assert set(started.values()) == {1, 2}, "each pipeline of each upload once"

    stat = aws.stat_object("aws-bucket", "swept/a.csv")
    assert stat.last_modified is not None
    late = aws_message("aws-bucket", "swept/a.csv", etag=str(stat.etag),
                       event_time=stat.last_modified.isoformat().replace("+00:00", "Z"))  # fmt: skip
    (event,) = parse_message(late, max_bytes=1 << 20)
    async with engine.transaction() as tx:
        stored = await store_events(tx, [Positioned(route(event, load_rules(None), max_lineage_depth=3))], topic="t")
    assert (stored.new_events, stored.same_upload, stored.jobs_created) == (1, 1, 0)
