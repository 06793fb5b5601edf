"""RabbitMQ adapters (aio-pika): the relay's bus and the consumer's source."""

from chat_outbox.adapters.rabbitmq.bus import RabbitBus, classify
from chat_outbox.adapters.rabbitmq.options import RabbitOptions, redact
from chat_outbox.adapters.rabbitmq.source import RabbitSource
from chat_outbox.adapters.rabbitmq.topology import dlq_name, queue_name, shard_for

__all__ = [
    "RabbitBus",
    "RabbitOptions",
    "RabbitSource",
    "classify",
    "dlq_name",
    "queue_name",
    "redact",
    "shard_for",
]
