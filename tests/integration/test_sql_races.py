"""The seed race on real databases: a relay outcome that arrives after the consumer's write."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.clock import SystemClock, uuid4_event_id
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.adapters.sql.claims import lease_heads
from chat_outbox.adapters.sql.tables import chat_history, outbox_messages
from chat_outbox.application.consume.persisting import UnitOfWorkHistoryWriter
from chat_outbox.application.errors import StoreUnavailable
from chat_outbox.application.record.recording import RecordChatMessage
from chat_outbox.domain import (
    ChatMessage,
    Envelope,
    OutboxMessage,
    OutboxStatus,
    PublishFailure,
    RetryPolicy,
    Transition,
)
from chat_outbox.entrypoints.containers import history_writer

pytestmark = pytest.mark.integration

LEASE = timedelta(seconds=60)
ITERATIONS = 40
clock = SystemClock()

LateOutcome = Callable[[OutboxMessage], Transition | None]
LATE_OUTCOMES: dict[str, LateOutcome] = {
    "ack": lambda m: m.mark_published(clock.now()),
    "retryable-failure": lambda m: m.record_publish_failure(
        PublishFailure("broker down"), clock.now(), RetryPolicy()
    ),
    "fatal-failure": lambda m: m.record_publish_failure(
        PublishFailure.fatal("message too large"), clock.now(), RetryPolicy()
    ),
}


async def record_and_claim(uow: SqlUnitOfWorkFactory, text: str) -> OutboxMessage:
    """Record a message, then claim it in a committed unit of work, as the relay does."""
    chat = ChatMessage.create(user_id=7, conversation_id="c-1", role="user", message=text)
    recorded = await RecordChatMessage(uow, clock, uuid4_event_id, "chat")(chat)
    async with uow() as unit:
        [snapshot] = await lease_heads(unit.connection, clock.now(), 10, LEASE)
        await unit.commit()
    assert snapshot.id == recorded.id
    return snapshot


async def apply_late(uow: SqlUnitOfWorkFactory, transition: Transition | None) -> int:
    """What Relay.relay_due does once the bus has answered."""
    assert transition is not None
    async with uow() as unit:
        applied = await unit.outbox.apply([transition])
        await unit.commit()
    return applied


async def retried(write: Callable[[], Awaitable[object]]) -> object:
    """Run a write as the relay and consumer loops do: InnoDB may pick either of the two
    racing transactions as a deadlock victim, and the loop runs the victim again."""
    for _ in range(5):
        try:
            return await write()
        except StoreUnavailable as error:
            if "Deadlock" not in str(error):
                raise
    return await write()


async def outbox_row(engine: AsyncEngine, outbox_id: int) -> dict[str, Any]:
    async with engine.connect() as connection:
        query = select(outbox_messages).where(outbox_messages.c.id == outbox_id)
        return dict((await connection.execute(query)).mappings().one())


@pytest.mark.parametrize("outcome", LATE_OUTCOMES.values(), ids=LATE_OUTCOMES.keys())
async def test_a_late_relay_outcome_leaves_a_consumed_row_consumed(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory, outcome: LateOutcome
) -> None:
    """An ack or failure applied after the consumer marked the row consumed changes nothing."""
    snapshot = await record_and_claim(uow, "hello")
    await UnitOfWorkHistoryWriter(uow).persist([Envelope.for_outbox_message(snapshot)], clock.now())
    consumed = await outbox_row(engine, snapshot.id)
    assert consumed["status"] == OutboxStatus.CONSUMED
    assert await apply_late(uow, outcome(snapshot)) == 0
    assert await outbox_row(engine, snapshot.id) == consumed


async def test_a_concurrent_late_ack_and_consume_always_end_consumed_once(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """Whichever of the ack and the consumer's write lands first, the row ends consumed
    (on PostgreSQL through the one-statement write, as wired in production)."""
    writer = history_writer(engine, uow)
    event_ids = []
    for iteration in range(ITERATIONS):
        snapshot = await record_and_claim(uow, f"message {iteration}")
        envelope = Envelope.for_outbox_message(snapshot)
        event_ids.append(envelope.event_id)
        ack = snapshot.mark_published(clock.now())
        writes: list[Callable[[], Awaitable[object]]] = [
            functools.partial(apply_late, uow, ack),
            functools.partial(writer.persist, [envelope], clock.now()),
        ]
        await asyncio.gather(*(retried(w) for w in (writes if iteration % 2 else writes[::-1])))
    async with engine.connect() as connection:
        statuses = await connection.execute(
            select(outbox_messages.c.status, func.count()).group_by(outbox_messages.c.status)
        )
        assert {status: count for status, count in statuses} == {
            OutboxStatus.CONSUMED.value: ITERATIONS
        }
        history = await connection.execute(select(chat_history.c.event_id))
        assert sorted(history.scalars()) == sorted(event_ids)
