"""The same handlers against AWS S3's API (moto in server mode): only the endpoint changes."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from minio import Minio
from moto.server import ThreadedMotoServer

from conveyor.pipeline.engine import Engine
from conveyor.pipeline.storage.client import s3_client
from conveyor.pipeline.storage.settings import S3Settings
from tests.integration import samples
from tests.integration.conftest import put_bytes, run_handler


@pytest.fixture(scope="module")
def aws() -> Iterator[Minio]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        settings = S3Settings(endpoint=f"http://127.0.0.1:{port}", access_key="testing", secret_key="testing")
        client = s3_client(settings)
        client.make_bucket("aws-bucket")
        yield client
    finally:
        server.stop()


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
