"""Readiness of the Kafka cluster: a bootstrap metadata request on a short-lived client."""

from __future__ import annotations

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError

from chat_outbox.adapters.kafka.options import KafkaOptions


class KafkaProbe:
    def __init__(self, options: KafkaOptions) -> None:
        self._options = options

    async def __call__(self) -> None:
        # A fresh client each time: a cached connection would answer for a broker that is
        # gone until its metadata ages out.
        client = AIOKafkaClient(**self._options.common())
        try:
            await client.bootstrap()
        finally:
            await client.close()


async def answers(bootstrap_servers: str, timeout_ms: int = 2000) -> bool:
    """Whether a broker answers a metadata request now; unreachable or slow is a no."""
    options = KafkaOptions(bootstrap_servers=bootstrap_servers, request_timeout_ms=timeout_ms)
    try:
        await KafkaProbe(options)()
    except (KafkaError, OSError, TimeoutError):
        return False
    return True
