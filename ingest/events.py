"""Parsing bucket notifications from Kafka into :class:`UploadEvent` (pure: no I/O).

Two shapes arrive:

- MinIO: ``{"EventName", "Key", "Records": [one record]}``. Inside the record ``s3.object.key`` is Go's
  ``url.QueryEscape`` of the name; the top-level ``Key`` (and the Kafka key) is ``bucket/raw name``.
  The raw name is authoritative; the escaped one must decode (``unquote_plus``) to the same.
- Plain S3 (AWS, versitygw): ``{"Records": [...]}``. AWS URL-encodes the key (space as ``+``);
  versitygw sends it raw, with a constant sequencer. Decoding a raw name a second time is the classic
  bug (``a+b.txt`` would become ``a b.txt``), so the encoding is chosen per source, never guessed per key.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal
from urllib.parse import quote_plus, unquote_plus

import msgspec
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from conveyor.db.records import EventOrigin
from conveyor.db.values import unstorable
from conveyor.ingest.errors import BadEvent

KeyEncoding = Literal["auto", "url", "raw"]
#: versitygw marks its records with this configuration id (and sends keys raw).
VERSITYGW_CONFIGURATION_ID = "webhook-global"
TEST_EVENT = "s3:TestEvent"
REMOVED_PREFIX = "s3:ObjectRemoved:"
DELETE_MARKER_CREATED = "s3:ObjectRemoved:DeleteMarkerCreated"
#: The ``eventSource`` of events conveyor synthesizes for objects found by listing, by origin.
SYNTHESIZED_SOURCES = {"conveyor:sweep": EventOrigin.SWEEP, "conveyor:backfill": EventOrigin.BACKFILL}
#: A MinIO sequencer is the object's modification time in ns; one further than this from the event's
#: own time is not a time (another server's opaque sequencer) and is not used as one.
_SEQUENCER_PLAUSIBLE = timedelta(days=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A NUL or a UTF-16 surrogate, escaped: what PostgreSQL may refuse to store.
_MAYBE_UNSTORABLE = re.compile(rb"\\u(0000|[dD][89a-fA-F])")


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


# The schema twice, on purpose: msgspec decodes the messages it accepts strictly and fast (the hot path of
# ingest); pydantic reads what msgspec refused, so a message pydantic's lax rules accept (a size written
# as 1.0, a time as a number) still parses, and one nobody accepts gets pydantic's readable reason.


class _Object(_Model):
    key: str
    size: int | None = None
    etag: str | None = Field(None, alias="eTag")
    version_id: str | None = Field(None, alias="versionId")
    sequencer: str | None = None
    content_type: str | None = Field(None, alias="contentType")
    user_metadata: dict[str, str] = Field(default_factory=dict, alias="userMetadata")


class _Bucket(_Model):
    name: str = Field(min_length=1)


class _S3(_Model):
    bucket: _Bucket
    object: _Object
    configuration_id: str | None = Field(None, alias="configurationId")


class _Record(_Model):
    event_name: str = Field(alias="eventName", min_length=1)
    event_time: datetime | None = Field(None, alias="eventTime")
    event_source: str | None = Field(None, alias="eventSource")
    s3: _S3


class _Envelope(_Model):
    event_name: str | None = Field(None, alias="EventName")
    key: str | None = Field(None, alias="Key")
    records: list[_Record] = Field(alias="Records", min_length=1)


_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


class _FastObject(msgspec.Struct, frozen=True, rename={"etag": "eTag", "version_id": "versionId",
                                                       "content_type": "contentType",
                                                       "user_metadata": "userMetadata"}):  # fmt: skip
    key: str
    size: int | None = None
    etag: str | None = None
    version_id: str | None = None
    sequencer: str | None = None
    content_type: str | None = None
    user_metadata: dict[str, str] = msgspec.field(default_factory=dict)


class _FastBucket(msgspec.Struct, frozen=True):
    name: _NonEmpty


class _FastS3(msgspec.Struct, frozen=True, rename={"configuration_id": "configurationId"}):
    bucket: _FastBucket
    object: _FastObject
    configuration_id: str | None = None


class _FastRecord(msgspec.Struct, frozen=True, rename="camel"):
    event_name: _NonEmpty
    s3: _FastS3
    event_time: datetime | None = None
    event_source: str | None = None


class _FastEnvelope(msgspec.Struct, frozen=True, rename="pascal"):
    records: Annotated[list[_FastRecord], msgspec.Meta(min_length=1)]
    event_name: str | None = None
    key: str | None = None


_decode_envelope = msgspec.json.Decoder(_FastEnvelope).decode
_AnyEnvelope = _Envelope | _FastEnvelope
_AnyRecord = _Record | _FastRecord


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadEvent:
    """One object notification, with the object's real (decoded) name."""

    bucket: str
    key: str
    version_id: str = ""
    event_name: str
    sequencer: str = ""
    etag: str | None = None
    size: int | None = None
    content_type: str | None = None
    user_metadata: dict[str, str] = field(default_factory=dict)
    event_time: datetime | None = None
    #: When the object was written, as exactly as the source tells (MinIO's sequencer is the mtime in ns;
    #: other servers' events only carry their own time).
    modified_at: datetime | None = None
    origin: EventOrigin = EventOrigin.NOTIFICATION

    @property
    def is_removal(self) -> bool:
        return self.event_name.startswith(REMOVED_PREFIX)

    @property
    def written_at(self) -> datetime | None:
        """The best known time of the write (or removal) this event reports."""
        return self.modified_at or self.event_time

    def metadata(self, name: str) -> str | None:
        """A user metadata value by name, whatever the case and ``X-Amz-Meta-`` prefix the server used."""
        if not self.user_metadata:
            return None
        wanted = name.lower().removeprefix("x-amz-meta-")
        for key, value in self.user_metadata.items():
            if key.lower().removeprefix("x-amz-meta-") == wanted:
                return value
        return None


def parse_message(value: bytes, *, max_bytes: int, plain_key_encoding: KeyEncoding = "auto") -> list[UploadEvent]:
    """The upload events in one Kafka message value; [] for a server's test event.

    Raises :class:`BadEvent` with reason ``too_large``, ``not_json``, ``schema`` or ``undecodable_key``.
    """
    if len(value) > max_bytes:
        raise BadEvent("too_large", f"message of {len(value)} bytes exceeds the {max_bytes}-byte limit")
    envelope: _AnyEnvelope
    try:
        envelope = _decode_envelope(value)
    except (msgspec.ValidationError, msgspec.DecodeError):
        try:
            envelope = _Envelope.model_validate_json(value)
        except ValidationError as exc:
            return _not_an_upload(value, exc)
    events = [_event(envelope, record, plain_key_encoding) for record in envelope.records]
    if _MAYBE_UNSTORABLE.search(value):  # cheap pre-filter: JSON can only carry these as \u escapes
        for event in events:
            if (where := unstorable(asdict(event))) is not None:
                raise BadEvent("schema", f"{where} holds a NUL character or an unpaired surrogate")
    return events


def _not_an_upload(value: bytes, exc: ValidationError) -> list[UploadEvent]:
    """Tell apart a server's test event (ignored), bytes that are not JSON, and JSON of the wrong shape."""
    try:
        document = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadEvent("not_json", f"not JSON: {error}") from None
    if isinstance(document, dict) and document.get("Event") == TEST_EVENT:
        return []
    raise BadEvent("schema", _schema_error(exc)) from None


def _schema_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "message"
    return f"{where}: {first['msg']}" + (f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else "")


def _event(envelope: _AnyEnvelope, record: _AnyRecord, plain_key_encoding: KeyEncoding) -> UploadEvent:
    obj, bucket = record.s3.object, record.s3.bucket.name
    origin = SYNTHESIZED_SOURCES.get(record.event_source or "", EventOrigin.NOTIFICATION)
    key = _minio_key(envelope, record) if envelope.key is not None else _plain_key(record, plain_key_encoding)
    sequencer = obj.sequencer or ""
    if record.s3.configuration_id == VERSITYGW_CONFIGURATION_ID:
        # versitygw's sequencer is a constant: re-uploads of a key would look like duplicates.
        sequencer = f"{sequencer}:{obj.etag or ''}:{record.event_time.isoformat() if record.event_time else ''}"
    return UploadEvent(
        bucket=bucket,
        key=key,
        version_id=obj.version_id or "",
        event_name=_s3_prefixed(record.event_name),
        sequencer=sequencer,
        etag=obj.etag.strip('"') if obj.etag else None,
        size=obj.size,
        content_type=obj.content_type,
        user_metadata=obj.user_metadata,
        event_time=record.event_time,
        modified_at=_modified_at(obj.sequencer, None if origin is not EventOrigin.NOTIFICATION else record.event_time)
        if envelope.key is not None
        else None,
        origin=origin,
    )


def _s3_prefixed(event_name: str) -> str:
    # AWS writes "ObjectCreated:Put", MinIO and versitygw "s3:ObjectCreated:Put": one spelling inside.
    return event_name if event_name.startswith("s3:") else f"s3:{event_name}"


def _modified_at(sequencer: str | None, event_time: datetime | None) -> datetime | None:
    """MinIO's sequencer as a time (``%X`` of the mtime in ns), if it is plausible near ``event_time``
    (a synthesized event's listed time is trusted: pass None)."""
    try:
        nanoseconds = int(sequencer or "", 16)
    except ValueError:
        return None
    if nanoseconds <= 0:
        return None
    modified = _EPOCH + timedelta(microseconds=nanoseconds // 1000)
    if event_time is not None and abs(modified - event_time) > _SEQUENCER_PLAUSIBLE:
        return None
    return modified


def synthesized_message(event: UploadEvent, *, origin: EventOrigin, event_time: datetime) -> bytes:
    """A MinIO-shaped notification for an object found by listing, for the same path as Kafka's events.

    Its sequencer is the listed modification time (in ns) and its ``eventSource`` names the origin, so
    the event parses back to ``event`` with that origin; a dead-lettered one replays like any other.
    """
    source = next(name for name, known in SYNTHESIZED_SOURCES.items() if known is origin)
    nanoseconds = ((event.modified_at or event_time) - _EPOCH) // timedelta(microseconds=1) * 1000
    obj: dict[str, object] = {
        "key": quote_plus(event.key, safe=""),  # Go's url.QueryEscape, as MinIO escapes it
        "size": event.size, "eTag": event.etag, "sequencer": f"{nanoseconds:X}",
        "contentType": event.content_type, "userMetadata": event.user_metadata,
    }  # fmt: skip
    if event.version_id:
        obj["versionId"] = event.version_id
    record = {
        "eventVersion": "2.0", "eventSource": source, "eventTime": event_time.isoformat().replace("+00:00", "Z"),
        "eventName": event.event_name, "s3": {"bucket": {"name": event.bucket}, "object": obj},
    }  # fmt: skip
    envelope = {"EventName": event.event_name, "Key": f"{event.bucket}/{event.key}", "Records": [record]}
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()


def _minio_key(envelope: _AnyEnvelope, record: _AnyRecord) -> str:
    bucket, _, raw = (envelope.key or "").partition("/")
    if bucket != record.s3.bucket.name or not raw:
        raise BadEvent("schema", f"Key {envelope.key!r} does not name an object of bucket {record.s3.bucket.name!r}")
    if unquote_plus(record.s3.object.key) != raw:
        raise BadEvent("undecodable_key", f"s3.object.key {record.s3.object.key!r} does not decode to {raw!r}")
    return raw


def _plain_key(record: _AnyRecord, encoding: KeyEncoding) -> str:
    raw_source = encoding == "raw" or (encoding == "auto" and record.s3.configuration_id == VERSITYGW_CONFIGURATION_ID)
    if raw_source:
        return record.s3.object.key
    try:
        key = unquote_plus(record.s3.object.key, errors="strict")
    except UnicodeDecodeError as exc:
        raise BadEvent(
            "undecodable_key", f"key {record.s3.object.key!r} is not valid UTF-8 once decoded: {exc}"
        ) from None
    if not key:
        raise BadEvent("undecodable_key", "empty object key")
    return key
