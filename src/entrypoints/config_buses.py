"""The bus settings, Kafka's and RabbitMQ's, each declared once (see config_schema)."""

from __future__ import annotations

import attrs

from chat_outbox.entrypoints import config_parsers as parsers
from chat_outbox.entrypoints.config_schema import setting
from chat_outbox.entrypoints.config_sections import (
    DAY_MS,
    KAFKA_COMPRESSIONS,
    KAFKA_SASL_MECHANISMS,
    KAFKA_SECURITY_PROTOCOLS,
    MIB,
)


def _ms(default: int, doc: str) -> int:
    return setting(default, parsers.positive_int, doc, least=1, most=DAY_MS)


@attrs.frozen
class KafkaSettings:
    """The Kafka bus (aiokafka): connection, producer and consumer group."""

    bootstrap_servers: str = setting(
        "127.0.0.1:9092", parsers.servers, "host:port entries, comma-separated"
    )
    security_protocol: str = setting(
        "PLAINTEXT",
        parsers.choice(KAFKA_SECURITY_PROTOCOLS, upper=True),
        "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
    )
    sasl_mechanism: str = setting(
        "PLAIN",
        parsers.choice(KAFKA_SASL_MECHANISMS, upper=True),
        "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
    )
    sasl_username: str = setting("", parsers.text, "SASL user name")
    sasl_password: str = setting("", parsers.verbatim, "SASL password", secret=True)
    ssl_cafile: str = setting("", parsers.text, "CA bundle for TLS (empty: the system's)")
    compression: str = setting(
        "none", parsers.choice(KAFKA_COMPRESSIONS), "none, gzip, snappy, lz4 or zstd"
    )
    enable_idempotence: bool = setting(
        False, parsers.boolean, "Idempotent producer on a real cluster (the local broker cannot)"
    )
    create_topics: bool = setting(
        True, parsers.boolean, "Create the topic and its dead-letter topic at start-up"
    )
    topic_partitions: int = setting(
        6, parsers.positive_int, "Partitions of created topics", least=1, most=100_000
    )
    replication_factor: int = setting(
        1,
        parsers.positive_int,
        "Replicas of created topics (3 on a production cluster)",
        least=1,
        most=32_767,  # an INT16 in Kafka's protocol
    )
    request_timeout_ms: int = _ms(10_000, "How long a request (a publish) may take")
    max_request_size: int = setting(
        1_048_576,
        parsers.positive_int,
        "The producer's largest request in bytes; a bigger record goes dead at once",
        least=1,
        most=1024 * MIB,
    )
    session_timeout_ms: int = _ms(10_000, "Consumer group session timeout")
    heartbeat_interval_ms: int = _ms(3_000, "Consumer group heartbeat interval")
    rebalance_timeout_ms: int = _ms(30_000, "Consumer group rebalance timeout")
    fetch_max_wait_ms: int = _ms(100, "How long a fetch waits for data")
    commit_interval_ms: int = _ms(
        200, "How often the consumer commits acknowledged offsets at most"
    )


@attrs.frozen
class RabbitMqSettings:
    """The RabbitMQ bus (aio-pika)."""

    url: str = setting(
        "amqp://guest:guest@127.0.0.1:5672/",
        parsers.amqp_url,
        "amqp:// or amqps:// URL of the broker",
        url=True,
    )
    queues: int = setting(
        4,
        parsers.positive_int,
        "Queues a topic is spread over, by a hash of the conversation id",
        least=1,
        most=1024,
    )
    prefetch: int = setting(
        500,
        parsers.positive_int,
        "Unacknowledged deliveries a consumer may hold per queue",
        least=1,
        most=65_535,  # AMQP's prefetch count is 16 bits
    )
    confirm_timeout_ms: int = _ms(10_000, "How long a publish waits for the broker's confirm")
    max_message_size: int = setting(
        16 * MIB,
        parsers.positive_int,
        "Largest record in bytes; a bigger one goes dead at once",
        least=1,
        most=512 * MIB,  # RabbitMQ's own ceiling
    )
