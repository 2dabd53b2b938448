"""Event retention against the topic's: a recorded event must outlive every offset Kafka can redeliver.

An event row is what makes a redelivered notification a duplicate. If retention deleted it while the topic
still held its message, a consumer group reset or a new member reading from the start would create its
jobs again. So ingest refuses to start while ``engine.retention.events_after_seconds`` is not longer than
the events topic's ``retention.ms`` (and never, when the topic keeps messages forever).
"""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from conveyor.db.errors import ConfigurationError, ServiceUnavailable
from conveyor.ingest.settings import KafkaSettings


async def topic_retention_seconds(kafka: KafkaSettings) -> float | None:
    """The events topic's ``retention.ms`` in seconds; None when it keeps messages forever."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers,
                                request_timeout_ms=int(kafka.request_timeout_seconds * 1000))  # fmt: skip
    try:
        await admin.start()
        (response,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, kafka.events_topic, configs={"retention.ms": None})]
        )
    except KafkaError as exc:
        raise ServiceUnavailable(f"Kafka: cannot read {kafka.events_topic}'s retention: {exc}") from exc
    finally:
        await admin.close()
    (resource,) = response.resources
    entries = {entry[0]: entry[1] for entry in resource[4]}
    retention_ms = int(entries["retention.ms"])
    return None if retention_ms < 0 else retention_ms / 1000


def check_event_retention(events_after_seconds: float | None, topic_seconds: float | None, topic: str) -> None:
    """Raise :class:`ConfigurationError` if recorded events could be pruned before Kafka forgets them."""
    if events_after_seconds is None:
        return  # kept forever
    if topic_seconds is None or events_after_seconds <= topic_seconds:
        kept = "forever" if topic_seconds is None else f"{topic_seconds:g} s"
        raise ConfigurationError(
            f"CONVEYOR_ENGINE__RETENTION__EVENTS_AFTER_SECONDS={events_after_seconds:g} would forget recorded events "
            f"while {topic} still holds their messages ({kept}): a redelivery would create their jobs again. "
            "Make it longer than the topic's retention.ms, or unset it to keep events forever."
        )
