"""``conveyor bootstrap``: the buckets, Kafka topics and bucket notification rules conveyor needs.

Every step is idempotent, and the notification step preserves rules that other tools put on the bucket:
MinIO replaces a bucket's whole notification config on write, so we read, modify and write it back.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from minio import Minio
from minio.notificationconfig import NotificationConfig, QueueConfig

from conveyor.ingest.settings import KafkaSettings
from conveyor.pipeline.storage.client import s3_client
from conveyor.pipeline.storage.settings import S3Settings

log = logging.getLogger(__name__)


async def ensure_topics(settings: KafkaSettings) -> list[str]:
    """Create the events and dead-letter topics when missing; return those created."""
    wanted = {
        settings.events_topic: settings.events_partitions,
        settings.dead_letter_topic: settings.dead_letter_partitions,
    }
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.client_id}-bootstrap",
        request_timeout_ms=int(settings.request_timeout_seconds * 1000),
    )
    await admin.start()
    try:
        missing = sorted(set(wanted) - set(await admin.list_topics()))
        for topic in missing:
            new = NewTopic(topic, num_partitions=wanted[topic], replication_factor=settings.replication_factor)
            try:
                await admin.create_topics([new])
            except TopicAlreadyExistsError:
                log.info("topic %s was created concurrently", topic)
    finally:
        await admin.close()
    return missing


def ensure_buckets(client: Minio, buckets: list[str]) -> list[str]:
    """Create the buckets that don't exist; return those created."""
    created = []
    for bucket in buckets:
        if not client.bucket_exists(bucket):
            client.make_bucket(bucket)
            created.append(bucket)
    return created


def ensure_notifications(client: Minio, settings: S3Settings) -> list[str]:
    """Point each bucket's upload events at the Kafka target; keep every other rule. Return buckets changed."""
    changed = []
    for bucket in settings.buckets:
        current = client.get_bucket_notification(bucket)
        ours = QueueConfig(queue=settings.notification_arn, events=settings.notification_events,
                           config_id=settings.notification_id)  # fmt: skip
        others = [q for q in current.queue_config_list if q.config_id != settings.notification_id]
        if _same_rule(current.queue_config_list, ours):
            continue
        client.set_bucket_notification(
            bucket,
            NotificationConfig(
                cloud_func_config_list=current.cloud_func_config_list,
                queue_config_list=[*others, ours],
                topic_config_list=current.topic_config_list,
            ),
        )
        changed.append(bucket)
    return changed


def _same_rule(existing: list[QueueConfig], ours: QueueConfig) -> bool:
    for rule in existing:
        if rule.config_id == ours.config_id:
            return (
                rule.queue == ours.queue
                and sorted(rule.events) == sorted(ours.events)
                and rule.prefix_filter_rule is None
            )
    return False


async def bootstrap(kafka: KafkaSettings, s3: S3Settings, *, notifications: bool = True) -> dict[str, list[str]]:
    """Topics, buckets and (for servers with bucket rules, i.e. MinIO) notification rules."""
    topics = await ensure_topics(kafka)
    client = s3_client(s3)
    buckets = await asyncio.to_thread(ensure_buckets, client, s3.buckets)
    rules = await asyncio.to_thread(ensure_notifications, client, s3) if notifications else []
    return {"topics": topics, "buckets": buckets, "notification_rules": rules}
