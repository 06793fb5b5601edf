"""Names and declarations: a direct exchange per topic, its keys hashed onto N quorum queues
with a single active consumer each, and a dead-letter exchange with its queue."""

from __future__ import annotations

import zlib
from collections.abc import Mapping

from aio_pika import ExchangeType
from aio_pika.abc import AbstractChannel, AbstractExchange, FieldValue, HeadersType

KEY_HEADER = "message_key"
"""AMQP routes on the shard, so the record's own key travels in this header."""


def to_table(headers: Mapping[str, bytes]) -> HeadersType:
    """Record headers as an AMQP table: bytes travel as byte arrays ('x' fields)."""
    table: dict[str, FieldValue] = {name: bytearray(value) for name, value in headers.items()}
    return table


def from_table(table: HeadersType) -> dict[str, bytes]:
    """The inverse of to_table; a foreign producer's other field types arrive as text."""
    return {
        name: bytes(value) if isinstance(value, bytes | bytearray) else str(value).encode()
        for name, value in table.items()
    }


def shard_for(key: str, queues: int) -> int:
    # crc32, not hash(): every process (and every restart) must agree on the shard.
    return zlib.crc32(key.encode()) % queues


def queue_name(topic: str, shard: int) -> str:
    return f"{topic}.{shard}"


def dlx_name(topic: str) -> str:
    return f"{topic}.dlx"


def dlq_name(topic: str) -> str:
    return f"{topic}.dlq"


async def declare(channel: AbstractChannel, topic: str, queues: int) -> AbstractExchange:
    """Declare the topic's exchange, queues and dead-letter pair (idempotent); return the
    exchange to publish to."""
    dlx = await channel.declare_exchange(dlx_name(topic), ExchangeType.FANOUT, durable=True)
    dlq = await channel.declare_queue(
        dlq_name(topic), durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dlq.bind(dlx)
    exchange = await channel.declare_exchange(topic, ExchangeType.DIRECT, durable=True)
    for shard in range(queues):
        queue = await channel.declare_queue(
            queue_name(topic, shard),
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-single-active-consumer": True,
                # Whatever the broker itself dead-letters (say, under an operator's
                # delivery-limit policy) is parked with the consumer's poison records.
                "x-dead-letter-exchange": dlx_name(topic),
            },
        )
        await queue.bind(exchange, routing_key=str(shard))
    return exchange
