"""One harness per bus adapter, so the contract suite drives every bus the same way.

A harness owns a topic of its own and makes the adapter's publishing side (`bus`) and
consumers of one group (`source`); `crash` kills a consumer without acknowledging and
returns its successor. To run the contract suite against a new bus, add a harness here,
its name to conftest.BUS_NAMES and its endpoint to the `bus_endpoint` fixture.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import Protocol, TypeVar

import aio_pika
import attrs
import pytest

from chat_outbox.adapters.kafka import KafkaBus, KafkaSource, dlq_topic
from chat_outbox.adapters.memory import InMemoryBus, InMemoryStore, InMemoryUnitOfWork
from chat_outbox.adapters.rabbitmq import (
    RabbitBus,
    RabbitOptions,
    RabbitSource,
    dlq_name,
    queue_name,
)
from chat_outbox.adapters.rabbitmq.topology import dlx_name
from chat_outbox.application.errors import StoreUnavailable
from chat_outbox.application.ports import IncomingRecord, MessageBus, MessageSource, UnitOfWork
from chat_outbox.entrypoints.local_broker import free_loopback_port
from tests.integration.conftest import BUS_NAMES, fast_kafka_options
from tests.integration.kafka_helpers import read_topic, unique_names

BROKER_BUS_NAMES = tuple(name for name in BUS_NAMES if name != "memory")
RABBITMQ_QUEUES = 4

Closable = TypeVar("Closable", "ClosableBus", "ClosableSource")
DeadLetter = tuple[bytes, dict[str, bytes]]
"""A parked record's value and headers (the reason is in `dlq_reason`)."""


class ClosableBus(MessageBus, Protocol):
    async def close(self) -> None: ...


class ClosableSource(MessageSource, Protocol):
    async def close(self) -> None: ...


class BusHarness(Protocol):
    name: str
    topic: str

    @property
    def other_topic(self) -> str:
        """A second topic its sources also read (an event type's own)."""
        ...

    def bus(self, max_record_bytes: int | None = None) -> MessageBus: ...

    def unreachable_bus(self) -> MessageBus:
        """A bus configured for a broker that is not there."""
        ...

    def source(self) -> MessageSource: ...

    async def crash(self, source: MessageSource) -> MessageSource:
        """The consumer dies without acknowledging; return the group's next consumer."""
        ...

    async def dead_letters(self, expected: int) -> list[DeadLetter]: ...

    async def close(self) -> None: ...


@attrs.define
class MemoryHarness:
    name: str = "memory"
    topic: str = "chat.contract"
    other_topic: str = "events.contract"
    shared: InMemoryBus = attrs.field(factory=InMemoryBus)

    def bus(self, max_record_bytes: int | None = None) -> MessageBus:
        self.shared.max_record_bytes = max_record_bytes
        return self.shared

    def unreachable_bus(self) -> MessageBus:
        raise NotImplementedError("an in-process bus is never unreachable")

    def source(self) -> MessageSource:
        return self.shared

    async def crash(self, source: MessageSource) -> MessageSource:
        self.shared.crash_consumer()
        return self.shared

    async def dead_letters(self, expected: int) -> list[DeadLetter]:
        return [
            (record.value or b"", {**dict(record.headers), "dlq_reason": reason.encode()})
            for record, reason in self.shared.dead_letters
        ]

    async def close(self) -> None:
        return None


@attrs.define
class Closing:
    """Whatever a harness opened, closed at the end of the test."""

    opened: list[ClosableBus | ClosableSource] = attrs.field(factory=list)

    def track(self, thing: Closable) -> Closable:
        self.opened.append(thing)
        return thing

    async def close_all(self) -> None:
        for thing in reversed(self.opened):
            await thing.close()
        self.opened.clear()


@attrs.define
class KafkaHarness:
    bootstrap: str
    name: str = "kafka"
    topic: str = attrs.field(init=False)
    other_topic: str = attrs.field(init=False)
    group: str = attrs.field(init=False)
    closing: Closing = attrs.field(factory=Closing)

    def __attrs_post_init__(self) -> None:
        self.topic, self.group = unique_names("contract")
        self.other_topic = f"{self.topic}-events"

    def bus(self, max_record_bytes: int | None = None) -> MessageBus:
        limit = {} if max_record_bytes is None else {"max_request_size": max_record_bytes}
        options = fast_kafka_options(self.bootstrap, **limit)
        bus = KafkaBus(options, provision_topic=self.topic, also=(self.other_topic,))
        return self.closing.track(bus)

    def unreachable_bus(self) -> MessageBus:
        options = fast_kafka_options(f"127.0.0.1:{free_loopback_port()}", request_timeout_ms=1000)
        return self.closing.track(KafkaBus(options))

    def source(self) -> MessageSource:
        # A consumer that dies keeps its partitions until its session ends: keep it short.
        options = fast_kafka_options(
            self.bootstrap, session_timeout_ms=2000, heartbeat_interval_ms=200
        )
        source = KafkaSource(
            options, self.topic, self.group, provision=True, also=(self.other_topic,)
        )
        return self.closing.track(source)

    async def crash(self, source: MessageSource) -> MessageSource:
        assert isinstance(source, KafkaSource)
        await source.close()  # no offset is committed on the way out
        return self.source()

    async def dead_letters(self, expected: int) -> list[DeadLetter]:
        parked = await read_topic(self.bootstrap, dlq_topic(self.topic), expected)
        return [(bytes(r.value), {k: bytes(v) for k, v in r.headers}) for r in parked]

    async def close(self) -> None:
        await self.closing.close_all()


@attrs.define
class RabbitHarness:
    url: str
    name: str = "rabbitmq"
    topic: str = attrs.field(factory=lambda: f"chat-contract-{uuid.uuid4().hex[:12]}")
    closing: Closing = attrs.field(factory=Closing)

    @property
    def other_topic(self) -> str:
        return f"{self.topic}-events"

    def bus(self, max_record_bytes: int | None = None) -> MessageBus:
        options = RabbitOptions(url=self.url, queues=RABBITMQ_QUEUES)
        if max_record_bytes is not None:
            options = attrs.evolve(options, max_message_size=max_record_bytes)
        return self.closing.track(RabbitBus(options))

    def unreachable_bus(self) -> MessageBus:
        url = f"amqp://guest:guest@127.0.0.1:{free_loopback_port()}/"
        return self.closing.track(RabbitBus(RabbitOptions(url=url, connect_timeout=1.0)))

    def source(self) -> MessageSource:
        options = RabbitOptions(url=self.url, queues=RABBITMQ_QUEUES)
        return self.closing.track(RabbitSource(options, self.topic, also=(self.other_topic,)))

    async def crash(self, source: MessageSource) -> MessageSource:
        assert isinstance(source, RabbitSource)
        await source.close()  # the broker returns its unacknowledged deliveries
        return self.source()

    async def dead_letters(self, expected: int) -> list[DeadLetter]:
        connection = await aio_pika.connect(self.url)
        try:
            channel = await connection.channel()
            queue = await channel.get_queue(dlq_name(self.topic))
            found: list[DeadLetter] = []
            deadline = time.monotonic() + 10
            while len(found) < expected and time.monotonic() < deadline:
                message = await queue.get(no_ack=True, fail=False)
                if message is None:
                    await asyncio.sleep(0.1)
                    continue
                headers = {k: bytes(v) for k, v in message.headers.items()}  # type: ignore[arg-type]
                found.append((message.body, headers))
            return found
        finally:
            await connection.close()

    async def close(self) -> None:
        await self.closing.close_all()
        await delete_topology(self.url, self.topic)


async def delete_topology(url: str, topic: str) -> None:
    """Remove a test topic's exchanges and queues: quorum queues are not free to keep."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for shard in range(RABBITMQ_QUEUES):
            await channel.queue_delete(queue_name(topic, shard))
        await channel.queue_delete(dlq_name(topic))
        await channel.exchange_delete(topic)
        await channel.exchange_delete(dlx_name(topic))
    finally:
        await connection.close()


async def fetch_at_least(
    source: MessageSource, count: int, within: float = 30.0
) -> list[IncomingRecord]:
    """Fetch until `count` records arrived (a Kafka group join takes a few seconds)."""
    records: list[IncomingRecord] = []
    deadline = time.monotonic() + within
    while len(records) < count:
        if time.monotonic() >= deadline:
            pytest.fail(f"fetched {len(records)} of {count} records in {within:.0f} s")
        records.extend(await source.fetch(500, 0.5))
    return records


async def fetch_rest(source: MessageSource, quiet_for: float = 1.0) -> list[IncomingRecord]:
    """Whatever else arrives until nothing has for `quiet_for` seconds."""
    records: list[IncomingRecord] = []
    while batch := await source.fetch(500, quiet_for):
        records.extend(batch)
    return records


def values(records: Sequence[IncomingRecord]) -> list[bytes]:
    return [record.value or b"" for record in records]


@attrs.define
class RefusingCommits:
    """A unit-of-work factory over an in-memory store whose every commit fails as a lost
    database connection would."""

    store: InMemoryStore

    def __call__(self) -> UnitOfWork:
        return RefusingUnitOfWork(self.store)


class RefusingUnitOfWork(InMemoryUnitOfWork):
    async def commit(self) -> None:
        raise StoreUnavailable("the database went away before the commit")


def harness_for(name: str, endpoint: str) -> BusHarness:
    if name == "kafka":
        return KafkaHarness(endpoint)
    if name == "rabbitmq":
        return RabbitHarness(endpoint)
    return MemoryHarness()
