"""The consumer's side of RabbitMQ: deliveries buffered under a prefetch limit, acknowledged
one by one only when told, poison records published to the dead-letter exchange."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from functools import partial

import structlog
from aio_pika import DeliveryMode, Message
from aio_pika.abc import AbstractIncomingMessage
from aio_pika.exceptions import AMQPError

from chat_outbox.adapters.rabbitmq.bus import START_ERRORS
from chat_outbox.adapters.rabbitmq.connection import Link
from chat_outbox.adapters.rabbitmq.options import RabbitOptions
from chat_outbox.adapters.rabbitmq.topology import (
    KEY_HEADER,
    declare,
    dlx_name,
    from_table,
    queue_name,
    to_table,
)
from chat_outbox.application.errors import BusUnavailable
from chat_outbox.application.ports import IncomingRecord, MessageSource

log = structlog.get_logger(__name__)

Delivery = tuple[str, int, AbstractIncomingMessage]
"""A delivery and the topic and shard (queue index) it came from."""


class RabbitSource(MessageSource):
    """Consumes every queue of the topic; RabbitMQ hands each queue to one consumer at a
    time. A record's `offset` is this source's own delivery sequence number, never reused,
    so an acknowledgement can never hit a later delivery that got the same delivery tag
    on a new channel."""

    def __init__(self, options: RabbitOptions, topic: str, also: Sequence[str] = ()) -> None:
        """Reads `topic`'s queues, and those of the topics `also` names (event types with
        topics of their own)."""
        self._options = options
        self._topics = tuple(dict.fromkeys((topic, *also)))
        self._consuming = Link(options, "chat-outbox-consumer", confirms=False)
        self._parking = Link(options, "chat-outbox-dead-letters", confirms=True)
        self._buffer: asyncio.Queue[Delivery] = asyncio.Queue()
        self._unacked: dict[int, AbstractIncomingMessage] = {}
        self._sequence = itertools.count()

    async def fetch(self, max_records: int, timeout: float) -> list[IncomingRecord]:
        try:
            await self._started()
        except START_ERRORS as error:
            await self._consuming.close()  # so the next fetch subscribes afresh
            log.warning(
                "rabbitmq_consumer_unavailable",
                error=self._options.scrub(f"{type(error).__name__}: {error}"),
                retry_in_s=timeout,
            )
            await asyncio.sleep(timeout)
            return []
        try:
            first = await asyncio.wait_for(self._buffer.get(), timeout)
        except TimeoutError:
            return []
        deliveries = [first]
        while len(deliveries) < max_records and not self._buffer.empty():
            deliveries.append(self._buffer.get_nowait())
        return [self._record(topic, shard, message) for topic, shard, message in deliveries]

    async def acknowledge(self, records: Sequence[IncomingRecord]) -> None:
        lost = 0
        for record in records:
            message = self._unacked.pop(record.offset, None)
            try:
                if message is None:
                    raise LookupError("delivered on a channel that has since closed")
                await message.ack()
            except (AMQPError, LookupError):
                lost += 1
        if lost:
            # The channel closed first: the broker delivers these again, and the
            # idempotent history insert makes that harmless.
            log.warning("rabbitmq_ack_lost", records=lost, of=len(records))

    async def dead_letter(self, record: IncomingRecord, reason: str) -> None:
        headers = {
            **dict(record.headers),
            KEY_HEADER: record.key or b"",
            "dlq_reason": reason.encode("utf-8", "replace")[:1000],
            "dlq_source": f"{queue_name(record.topic, record.partition)}".encode(),
        }
        message = Message(
            record.value or b"", headers=to_table(headers), delivery_mode=DeliveryMode.PERSISTENT
        )
        try:
            channel, _ = await self._parking.channel()
            exchange = await channel.get_exchange(dlx_name(record.topic))
            await exchange.publish(message, "", timeout=self._options.confirm_timeout)
        except START_ERRORS as error:
            reason = self._options.scrub(
                f"dead-letter publish failed: {type(error).__name__}: {error}"
            )
            raise BusUnavailable(reason) from error

    async def close(self) -> None:
        await self._consuming.close()
        await self._parking.close()

    async def _started(self) -> None:
        channel, reopened = await self._consuming.channel()
        if not reopened:
            return
        # Whatever a closed channel delivered comes again on the new one.
        self._buffer = asyncio.Queue()
        self._unacked.clear()
        await channel.set_qos(prefetch_count=self._options.prefetch)
        for topic in self._topics:
            await declare(channel, topic, self._options.queues)
            for shard in range(self._options.queues):
                queue = await channel.get_queue(queue_name(topic, shard), ensure=False)
                await queue.consume(partial(_buffered, self._buffer, topic, shard))
        log.info(
            "rabbitmq_consumer_started", topic=",".join(self._topics), queues=self._options.queues
        )

    def _record(self, topic: str, shard: int, message: AbstractIncomingMessage) -> IncomingRecord:
        sequence = next(self._sequence)
        self._unacked[sequence] = message
        headers = from_table(message.headers)
        key = headers.pop(KEY_HEADER, None)
        return IncomingRecord(
            topic=topic,
            partition=shard,
            offset=sequence,
            key=key,
            value=message.body,
            headers=tuple(headers.items()),
        )


async def _buffered(
    buffer: asyncio.Queue[Delivery], topic: str, shard: int, message: AbstractIncomingMessage
) -> None:
    buffer.put_nowait((topic, shard, message))
