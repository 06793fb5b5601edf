"""One lazily (re)opened connection and channel, shared by the bus and the source."""

from __future__ import annotations

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel, AbstractConnection

from chat_outbox.adapters.rabbitmq.options import RabbitOptions

log = structlog.get_logger(__name__)


class Link:
    """A connection and one channel on it, reopened on demand after either closed: a
    closed channel or connection is how RabbitMQ reports most errors."""

    def __init__(self, options: RabbitOptions, name: str, *, confirms: bool) -> None:
        self._options = options
        self._name = name
        self._confirms = confirms
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None

    @property
    def is_open(self) -> bool:
        return self._channel is not None and not self._channel.is_closed

    async def channel(self) -> tuple[AbstractChannel, bool]:
        """The open channel, and whether it was opened by this call (so the caller
        declares its topology and consumers again)."""
        if self._channel is not None and not self._channel.is_closed:
            return self._channel, False
        if self._connection is None or self._connection.is_closed:
            await self.close()
            self._connection = await aio_pika.connect(
                self._options.url,
                timeout=self._options.connect_timeout,
                client_properties={"connection_name": self._name},
            )
            log.info("rabbitmq_connected", url=self._options.safe_url, name=self._name)
        self._channel = await self._connection.channel(
            publisher_confirms=self._confirms, on_return_raises=self._confirms
        )
        return self._channel, True

    async def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and not connection.is_closed:
            await connection.close()
