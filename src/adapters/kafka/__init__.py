"""Kafka adapters (aiokafka): the relay's bus, the consumer's source, topic provisioning."""

from adapters.kafka.bus import KafkaBus
from adapters.kafka.errors import classify
from adapters.kafka.options import COMPRESSIONS, SECURITY_PROTOCOLS, KafkaOptions
from adapters.kafka.source import KafkaSource
from adapters.kafka.topics import create_topics, dlq_topic, ensure_topics

__all__ = [
    "COMPRESSIONS",
    "SECURITY_PROTOCOLS",
    "KafkaBus",
    "KafkaOptions",
    "KafkaSource",
    "classify",
    "create_topics",
    "dlq_topic",
    "ensure_topics",
]
