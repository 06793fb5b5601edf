"""Provision topics: the chat topic and its dead-letter topic, with the configured partitions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from chat_outbox.adapters.kafka.options import KafkaOptions


def dlq_topic(topic: str) -> str:
    return f"{topic}.dlq"


async def create_topics(
    client_options: dict[str, Any], names: Sequence[str], partitions: int, replication: int
) -> None:
    """Create each topic; one that already exists is fine, any other error raises."""
    admin = AIOKafkaAdminClient(**client_options)
    try:
        await admin.start()
        response = await admin.create_topics(
            [
                NewTopic(name, num_partitions=partitions, replication_factor=replication)
                for name in names
            ]
        )
    finally:
        await admin.close()
    for result in response.to_object()["topic_errors"]:
        code = result["error_code"]
        if code not in (0, TopicAlreadyExistsError.errno):
            raise for_code(code)(f"creating topic {result['topic']!r}: {result['error_message']}")


async def ensure_topics(options: KafkaOptions, topic: str) -> None:
    await create_topics(
        options.common(),
        [topic, dlq_topic(topic)],
        options.topic_partitions,
        options.replication_factor,
    )
