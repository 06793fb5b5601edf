"""Readiness of RabbitMQ: open and close a short-lived connection."""

from __future__ import annotations

import aio_pika

from chat_outbox.adapters.rabbitmq.options import RabbitOptions


class RabbitProbe:
    def __init__(self, options: RabbitOptions) -> None:
        self._options = options

    async def __call__(self) -> None:
        # A fresh connection each time, like the Kafka probe: a cached one would answer for
        # a broker that is gone until its heartbeat times out.
        try:
            connection = await aio_pika.connect(
                self._options.url, timeout=self._options.connect_timeout
            )
        except Exception as error:  # noqa: BLE001 - re-raised, scrubbed
            # The driver's message may quote the URL, password included.
            raise ConnectionError(self._options.scrub(f"{type(error).__name__}: {error}")) from None
        await connection.close()
