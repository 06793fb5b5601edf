"""Kafka adapters (aiokafka): the relay's bus, the consumer's source, topic provisioning."""

from chat_outbox.adapters.kafka.bus import KafkaBus
from chat_outbox.adapters.kafka.errors import classify
from chat_outbox.adapters.kafka.options import KafkaOptions
from chat_outbox.adapters.kafka.source import KafkaSource
from chat_outbox.adapters.kafka.topics import create_topics, dlq_topic, ensure_topics

__all__ = [
    "KafkaBus",
    "KafkaOptions",
    "KafkaSource",
    "classify",
    "create_topics",
    "dlq_topic",
    "ensure_topics",
]
