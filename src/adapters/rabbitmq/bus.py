"""The relay's side of RabbitMQ: persistent messages with publisher confirms, one outcome each."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import partial

from aio_pika import DeliveryMode, Message
from aio_pika.abc import AbstractExchange
from aio_pika.exceptions import (
    AMQPConnectionError,
    AMQPError,
    ChannelInvalidStateError,
    DeliveryError,
    PublishError,
)

from chat_outbox.adapters.rabbitmq.connection import Link
from chat_outbox.adapters.rabbitmq.options import RabbitOptions
from chat_outbox.adapters.rabbitmq.topology import KEY_HEADER, declare, shard_for, to_table
from chat_outbox.adapters.waves import publish_in_waves
from chat_outbox.application.ports import MessageBus, OutgoingRecord, PublishResult
from chat_outbox.domain import PublishFailure

# The broker could not be reached, or did not answer in time: not the message's fault,
# so not one of its attempts (as for Kafka's connection errors and timeouts).
UNAVAILABLE_ERRORS = (AMQPConnectionError, ChannelInvalidStateError, OSError, TimeoutError)
START_ERRORS = (*UNAVAILABLE_ERRORS, AMQPError)


def classify(error: BaseException) -> PublishFailure:
    """Map a publish error to an outcome. A nack, a returned (unroutable) message and a
    channel closed by the broker are the broker's state: retried, and counted."""
    reason = f"{type(error).__name__}: {error}".strip().rstrip(":")
    if isinstance(error, PublishError):  # a DeliveryError too: test it first
        reason = f"returned unroutable: {reason}"
    elif isinstance(error, DeliveryError):
        reason = f"nacked by the broker: {reason}"
    elif isinstance(error, UNAVAILABLE_ERRORS):
        return PublishFailure.unavailable(reason)
    return PublishFailure(reason)


class RabbitBus(MessageBus):
    """Connects lazily and reconnects after a closed channel, so a broker that is down is
    a failed publish (tried again later), not a crashed relay."""

    def __init__(self, options: RabbitOptions) -> None:
        self._options = options
        self._link = Link(options, "chat-outbox-relay", confirms=True)
        self._exchanges: dict[str, AbstractExchange] = {}

    async def publish(self, records: Sequence[OutgoingRecord]) -> list[PublishResult]:
        if not records:
            return []
        try:
            exchanges = {topic: await self._exchange(topic) for topic in {r.topic for r in records}}
        except START_ERRORS as error:
            # Unreachable, or the topology refused (say, a queue declared with other
            # arguments): nothing to do with the messages, so no attempt is used up.
            await self._link.close()
            reason = self._options.scrub(f"broker unavailable: {type(error).__name__}: {error}")
            return [PublishFailure.unavailable(reason)] * len(records)
        # Each message is confirmed on its own, so a key's later message could land after
        # its earlier one failed: waves keep the key's order.
        return await publish_in_waves(records, partial(self._publish_wave, exchanges))

    async def _publish_wave(
        self, exchanges: dict[str, AbstractExchange], records: Sequence[OutgoingRecord]
    ) -> list[PublishResult]:
        """Sent in order on one channel; the confirms are awaited together."""
        outcomes = await asyncio.gather(
            *(self._confirmed(exchanges[record.topic], record) for record in records),
            return_exceptions=True,
        )
        return [self._result(outcome) for outcome in outcomes]

    async def _confirmed(self, exchange: AbstractExchange, record: OutgoingRecord) -> None:
        size = len(record.value)
        if size > self._options.max_message_size:
            raise RecordTooLarge(size, self._options.max_message_size)
        message = Message(
            record.value,
            headers=to_table({**dict(record.headers), KEY_HEADER: record.key.encode()}),
            delivery_mode=DeliveryMode.PERSISTENT,
        )
        await exchange.publish(
            message,
            str(shard_for(record.key, self._options.queues)),
            mandatory=True,
            timeout=self._options.confirm_timeout,
        )

    def _result(self, outcome: BaseException | None) -> PublishResult:
        if outcome is None:
            return None
        if isinstance(outcome, asyncio.CancelledError):
            raise outcome
        if isinstance(outcome, RecordTooLarge):
            return PublishFailure.fatal(str(outcome))
        failure = classify(outcome)
        return PublishFailure(
            self._options.scrub(failure.reason), failure.retryable, failure.counted
        )

    async def _exchange(self, topic: str) -> AbstractExchange:
        channel, reopened = await self._link.channel()
        if reopened:
            self._exchanges.clear()
        if topic not in self._exchanges:
            self._exchanges[topic] = await declare(channel, topic, self._options.queues)
        return self._exchanges[topic]

    async def close(self) -> None:
        await self._link.close()


class RecordTooLarge(Exception):
    """The record itself is over the size limit: sending it again can never succeed."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"RecordTooLarge: {size} bytes, over the limit of {limit}")
