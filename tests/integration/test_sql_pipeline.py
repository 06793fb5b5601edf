"""Record, relay and consume on real databases, with the in-memory bus between them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.clock import ManualClock, SystemClock, uuid4_event_id
from chat_outbox.adapters.memory import InMemoryBus
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.adapters.sql.tables import chat_history, outbox_messages
from chat_outbox.application.consume.consuming import Consumer, ConsumeReport
from chat_outbox.application.consume.persisting import UnitOfWorkHistoryWriter
from chat_outbox.application.operate.operations import outbox_stats, read_history
from chat_outbox.application.ports import Clock, IncomingRecord, MessageSource, OutgoingRecord
from chat_outbox.application.record.recording import RecordChatMessage
from chat_outbox.application.relay.relaying import Relay
from chat_outbox.domain import ChatMessage, OutboxStatus, PublishFailure, RetryPolicy
from tests.integration.relays import leasing_relay

pytestmark = pytest.mark.integration

TOPIC = "chat.messages"
CONVERSATIONS = ("conv-a", "conv-b", "conv-c")
MESSAGES = 30
NO_JITTER = RetryPolicy(rand=lambda: 1.0)


class AckLost(MessageSource):
    """The consumer process dies after its database commit, before acknowledging the batch."""

    def __init__(self, bus: InMemoryBus) -> None:
        self.bus = bus

    async def fetch(self, max_records: int, timeout: float) -> list[IncomingRecord]:
        return await self.bus.fetch(max_records, timeout)

    async def acknowledge(self, records: Sequence[IncomingRecord]) -> None:
        """Lost with the process."""

    async def dead_letter(self, record: IncomingRecord, reason: str) -> None:
        await self.bus.dead_letter(record, reason)


def chat(conversation: str, text: str) -> ChatMessage:
    return ChatMessage.create(user_id=7, conversation_id=conversation, role="user", message=text)


async def relay_all(relay: Relay) -> None:
    while (await relay.relay_due()).claimed:
        pass


async def consume_all(consumer: Consumer) -> ConsumeReport:
    received = persisted = duplicates = 0
    while (report := await consumer.consume_batch(timeout=0.01)).received:
        received += report.received
        persisted += report.persisted
        duplicates += report.duplicates
    return ConsumeReport(received, persisted, duplicates)


async def outbox_row(engine: AsyncEngine, outbox_id: int) -> dict[str, Any]:
    async with engine.connect() as connection:
        query = select(outbox_messages).where(outbox_messages.c.id == outbox_id)
        return dict((await connection.execute(query)).mappings().one())


def failing(failure: PublishFailure) -> InMemoryBus:
    def fail(_record: OutgoingRecord) -> PublishFailure:
        return failure

    return InMemoryBus(fail_with=fail)


async def record_one(uow: SqlUnitOfWorkFactory, clock: Clock, max_retry: int = 20) -> int:
    record = RecordChatMessage(uow, clock, uuid4_event_id, TOPIC, max_retry)
    return (await record(chat("conv-a", "hello"))).id


async def test_every_recorded_message_reaches_history_once_and_in_order_despite_redelivery(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """30 messages over 3 conversations are relayed, consumed, redelivered, and persisted once."""
    clock = SystemClock()
    bus = InMemoryBus()
    record = RecordChatMessage(uow, clock, uuid4_event_id, TOPIC)
    expected: dict[str, list[str]] = {conversation: [] for conversation in CONVERSATIONS}
    for n in range(MESSAGES):
        conversation = CONVERSATIONS[n % len(CONVERSATIONS)]
        expected[conversation].append(f"{conversation} #{n}")
        await record(chat(conversation, expected[conversation][-1]))
    writer = UnitOfWorkHistoryWriter(uow)

    await relay_all(leasing_relay(uow, bus, clock, batch_size=7))
    first = await consume_all(Consumer(AckLost(bus), writer, clock, batch_size=8))
    bus.crash_consumer()
    again = await consume_all(Consumer(bus, writer, clock, batch_size=8))

    assert (first.received, first.persisted) == (MESSAGES, MESSAGES)
    assert (again.received, again.persisted, again.duplicates) == (MESSAGES, 0, MESSAGES)
    async with engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(chat_history)) == MESSAGES
    for conversation, messages in expected.items():
        history = await read_history(uow, conversation)
        assert [entry.message for entry in history] == messages
    stats = await outbox_stats(uow)
    assert stats.counts[OutboxStatus.CONSUMED] == MESSAGES
    assert sum(stats.counts.values()) == MESSAGES


async def test_a_retryable_failure_waits_for_its_backoff_then_retries(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """After one failed round the row is pending again, due after the backoff, not before."""
    clock = ManualClock()
    relay = leasing_relay(uow, failing(PublishFailure("broker down")), clock, NO_JITTER)
    outbox_id = await record_one(uow, clock, max_retry=2)
    assert (await relay.relay_due()).retried == 1
    row = await outbox_row(engine, outbox_id)
    assert (row["status"], row["retry_count"], row["last_error"]) == ("pending", 1, "broker down")
    assert row["next_retry_at"] == clock.now() + NO_JITTER.backoff(1)
    clock.advance(NO_JITTER.backoff(1) - timedelta(microseconds=1))
    assert (await relay.relay_due()).claimed == 0


async def test_a_message_is_dead_once_its_retries_are_exhausted(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """With max_retry=2, the second failed round makes the row dead and it is never claimed."""
    clock = ManualClock()
    relay = leasing_relay(uow, failing(PublishFailure("broker down")), clock, NO_JITTER)
    outbox_id = await record_one(uow, clock, max_retry=2)
    for _ in range(2):
        await relay.relay_due()
        clock.advance(timedelta(minutes=10))
    row = await outbox_row(engine, outbox_id)
    assert (row["status"], row["retry_count"]) == (OutboxStatus.DEAD, 2)
    assert "retries exhausted" in row["last_error"]
    assert "broker down" in row["last_error"]
    assert (await relay.relay_due()).claimed == 0


async def test_a_fatal_failure_makes_a_message_dead_at_once(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """A failure that retrying cannot fix ends the row on its first round, with the reason."""
    clock = ManualClock()
    relay = leasing_relay(uow, failing(PublishFailure.fatal("message too large")), clock)
    outbox_id = await record_one(uow, clock)
    assert (await relay.relay_due()).dead == 1
    row = await outbox_row(engine, outbox_id)
    assert (row["status"], row["last_error"]) == (OutboxStatus.DEAD, "message too large")
