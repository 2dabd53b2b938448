"""Parsing notifications: every source's key encoding comes out as the object's real name."""

from __future__ import annotations

import json

import pytest

from conveyor.ingest.errors import BadEvent
from conveyor.ingest.events import parse_message
from tests.events import aws_message, minio_message, versitygw_message

AWKWARD = "deep/nested prefix/Q3 report+final (v2) 100% ünïcødé%2F.csv"
LIMIT = 1 << 20


@pytest.mark.parametrize("name", [AWKWARD, "a+b.txt", "100%.txt", "space in name", "%41", "plus+and%2Bescaped"])
def test_every_source_yields_the_exact_name(name: str) -> None:
    for message in (minio_message("b", name), aws_message("b", name), versitygw_message("b", name)):
        (event,) = parse_message(message, max_bytes=LIMIT)
        assert event.key == name


def test_minio_fields_are_kept() -> None:
    message = minio_message(
        "uploads", "x.csv", sequencer="182CA1370674B180", size=482113, metadata={"X-Amz-Meta-Who": "al"}
    )
    (event,) = parse_message(message, max_bytes=LIMIT)
    assert (event.bucket, event.event_name, event.sequencer, event.size) == (
        "uploads", "s3:ObjectCreated:Put", "182CA1370674B180", 482113
    )  # fmt: skip
    assert event.etag == "5d41402abc4b2a76b9719d911017c592"
    assert event.metadata("who") == "al" and event.metadata("X-Amz-Meta-Who") == "al"
    assert event.event_time is not None and event.version_id == ""


def test_aws_event_names_get_the_s3_prefix() -> None:
    (event,) = parse_message(aws_message("b", "k"), max_bytes=LIMIT)
    assert event.event_name == "s3:ObjectCreated:Put"


def test_versitygw_reuploads_get_distinct_identities() -> None:
    (first,) = parse_message(versitygw_message("b", "k", event_time="2026-01-01T00:00:01Z"), max_bytes=LIMIT)
    (again,) = parse_message(versitygw_message("b", "k", event_time="2026-01-01T00:00:01Z"), max_bytes=LIMIT)
    (later,) = parse_message(versitygw_message("b", "k", event_time="2026-01-01T00:00:09Z"), max_bytes=LIMIT)
    assert first.sequencer == again.sequencer != later.sequencer
    assert first.etag == "abc"


def test_explicit_key_encoding_overrides_detection() -> None:
    (raw,) = parse_message(aws_message("b", "a b"), max_bytes=LIMIT, plain_key_encoding="raw")
    assert raw.key == "a+b"


def test_server_test_events_are_ignored() -> None:
    assert parse_message(b'{"Service":"S3","Event":"s3:TestEvent","Bucket":"b"}', max_bytes=LIMIT) == []


def test_unknown_fields_are_ignored() -> None:
    document = json.loads(minio_message("b", "k"))
    document["Records"][0]["futureField"] = {"x": 1}
    document["Extra"] = True
    assert len(parse_message(json.dumps(document).encode(), max_bytes=LIMIT)) == 1


@pytest.mark.parametrize(
    ("value", "reason", "fragment"),
    [
        (b"\xff\xfe not json", "not_json", "not JSON"),
        (b"{truncated", "not_json", "not JSON"),
        (b'{"Records": []}', "schema", "Records"),
        (b'{"Records": [{"eventName": "s3:ObjectCreated:Put"}]}', "schema", "s3"),
        (b"[1, 2]", "schema", "should be an object"),
        (minio_message("b", "k").replace(b'"Key":"b/k"', b'"Key":"other/k"'), "schema", "does not name"),
        (minio_message("b", "k").replace(b'"key":"k"', b'"key":"not-k"'), "undecodable_key", "does not decode"),
        (aws_message("b", "x").replace(b'"key":"x"', b'"key":"%FF%FE"'), "undecodable_key", "UTF-8"),
    ],
)
def test_bad_messages_say_why(value: bytes, reason: str, fragment: str) -> None:
    with pytest.raises(BadEvent) as error:
        parse_message(value, max_bytes=LIMIT)
    assert error.value.reason == reason
    assert fragment in str(error.value)


def test_oversized_messages_are_refused_unread() -> None:
    with pytest.raises(BadEvent) as error:
        parse_message(b"x" * 2000, max_bytes=1024)
    assert error.value.reason == "too_large"


@pytest.mark.parametrize("poison", ["nul\u0000byte", "lone\udc00surrogate"])
def test_text_postgres_cannot_store_is_refused_as_a_schema_error(poison: str) -> None:
    message = minio_message("b", "k", metadata={"X-Amz-Meta-Note": poison})
    with pytest.raises(BadEvent) as error:
        parse_message(message, max_bytes=LIMIT)
    assert error.value.reason == "schema", "dead-lettered, never a batch PostgreSQL refuses"
