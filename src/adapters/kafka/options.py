"""Connection and tuning options for aiokafka clients, shared by the producer and consumer."""

from __future__ import annotations

import ssl
from typing import Any, TypeVar

import attrs
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from chat_outbox.adapters.kafka.partitioner import cached_partitioner

Client = TypeVar("Client", AIOKafkaProducer, AIOKafkaConsumer)


async def started(client: Client) -> Client:
    """Start an aiokafka client; one that fails to start is stopped, so nothing leaks."""
    try:
        await client.start()
    except BaseException:
        await client.stop()
        raise
    return client


@attrs.frozen
class KafkaOptions:
    bootstrap_servers: str = "127.0.0.1:9092"
    client_id: str = "chat-outbox"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = attrs.field(default=None, repr=False)
    ssl_cafile: str | None = None
    compression: str = "none"
    enable_idempotence: bool = False
    request_timeout_ms: int = 10_000
    linger_ms: int = 0  # the relay hands over whole batches; waiting adds only latency
    max_request_size: int = 1_048_576
    topic_partitions: int = 6
    replication_factor: int = 1
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    rebalance_timeout_ms: int = 30_000
    fetch_max_wait_ms: int = 100
    commit_interval_ms: int = 200
    """How often the consumer commits acknowledged offsets at most (see offsets.py)."""

    def common(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.request_timeout_ms,
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            options["ssl_context"] = ssl.create_default_context(cafile=self.ssl_cafile)
        if self.security_protocol.startswith("SASL"):
            options["sasl_mechanism"] = self.sasl_mechanism or "PLAIN"
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password
        return options

    def producer(self) -> dict[str, Any]:
        return {
            **self.common(),
            "acks": "all",
            "enable_idempotence": self.enable_idempotence,
            "compression_type": None if self.compression == "none" else self.compression,
            "linger_ms": self.linger_ms,
            "max_request_size": self.max_request_size,
            # One record batch carries all of a call's records for a partition.
            "max_batch_size": self.max_request_size,
            "partitioner": cached_partitioner,
        }

    def consumer(self, group_id: str) -> dict[str, Any]:
        return {
            **self.common(),
            # The broker holds a join request for up to the rebalance timeout: a shorter
            # request timeout would make the consumer retry its join for ever.
            "request_timeout_ms": max(self.request_timeout_ms, self.rebalance_timeout_ms + 5000),
            "group_id": group_id,
            "enable_auto_commit": False,
            # 'latest' is wrong on some Kafka-protocol brokers, and a new group must not skip.
            "auto_offset_reset": "earliest",
            "session_timeout_ms": self.session_timeout_ms,
            "heartbeat_interval_ms": self.heartbeat_interval_ms,
            "rebalance_timeout_ms": self.rebalance_timeout_ms,
            "fetch_max_wait_ms": self.fetch_max_wait_ms,
            "max_partition_fetch_bytes": max(self.max_request_size, 1_048_576),
        }
