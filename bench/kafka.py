"""The local broker for the whole run, per-run topics, and bulk producing for the persist test."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from bench.settings import PARTITIONS
from chat_outbox.entrypoints.local_broker import LocalBroker

_serial = itertools.count(1)


def unique_name(prefix: str) -> str:
    return f"bench.{prefix}.{next(_serial)}"


async def new_topic(broker: LocalBroker, prefix: str) -> str:
    """A fresh topic (and its DLQ) with the project's partition count."""
    topic = unique_name(prefix)
    await broker.create_topic(topic, PARTITIONS)
    await broker.create_topic(f"{topic}.dlq", PARTITIONS)
    return topic


async def drop_topic(broker: LocalBroker, topic: str) -> None:
    """Free the broker's memory; a failure here is not worth failing the run."""
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    with contextlib.suppress(Exception):
        await admin.start()
        await admin.delete_topics([topic, f"{topic}.dlq"])
    with contextlib.suppress(Exception):
        await admin.close()


async def produce(
    bootstrap: str, topic: str, messages: Sequence[tuple[bytes, bytes, list[tuple[str, bytes]]]]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for start in range(0, len(messages), 1000):
            futures = [
                await producer.send(topic, value=value, key=key, headers=headers)
                for key, value, headers in messages[start : start + 1000]
            ]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
