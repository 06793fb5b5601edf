"""The consumer's write as wired in production: on PostgreSQL a batch of new event ids is one
statement (history insert and consumed mark, autocommit); a batch it cannot take whole goes
on in a unit of work, which tells redeliveries from conflicts. Same outcomes everywhere."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.clock import SystemClock, uuid4_event_id
from chat_outbox.adapters.sql import OneStatementHistoryWriter, SqlUnitOfWorkFactory
from chat_outbox.adapters.sql.claims import lease_heads
from chat_outbox.adapters.sql.tables import chat_history, outbox_messages
from chat_outbox.application.ports import HistoryWriter, Persisted
from chat_outbox.application.record.recording import RecordChatMessage
from chat_outbox.domain import ChatMessage, Envelope, HistoryEntry, OutboxMessage, OutboxStatus
from chat_outbox.entrypoints.containers import history_writer

pytestmark = pytest.mark.integration

clock = SystemClock()
on_postgresql = pytest.mark.parametrize("migrated_engine", ["postgresql"], indirect=True)


async def published(uow: SqlUnitOfWorkFactory, count: int) -> list[OutboxMessage]:
    """Record `count` messages and claim them, as the relay does before publishing."""
    record = RecordChatMessage(uow, clock, uuid4_event_id, "chat")
    for n in range(count):
        chat = ChatMessage.create(user_id=7, conversation_id=f"c-{n}", role="user", message="hi")
        await record(chat)
    async with uow() as unit:
        claimed = await lease_heads(unit.connection, clock.now(), count, timedelta(seconds=60))
        await unit.commit()
    return claimed


def writer(engine: AsyncEngine, uow: SqlUnitOfWorkFactory) -> HistoryWriter:
    return history_writer(engine, uow)


@attrs.define
class Rest(HistoryWriter):
    """What the one statement hands on: it keeps the batches, and writes nothing."""

    handed: list[list[str]] = attrs.field(factory=list)

    async def persist(self, envelopes: Sequence[Envelope], at: datetime) -> Persisted:
        self.handed.append([envelope.event_id for envelope in envelopes])
        return Persisted(0)


async def statuses(engine: AsyncEngine) -> dict[int, str]:
    async with engine.connect() as connection:
        rows = await connection.execute(select(outbox_messages.c.id, outbox_messages.c.status))
        return {outbox_id: status for outbox_id, status in rows}


async def stored(engine: AsyncEngine) -> dict[str, dict[str, Any]]:
    async with engine.connect() as connection:
        rows = (await connection.execute(select(chat_history))).mappings()
        return {row["event_id"]: dict(row) for row in rows}


async def test_a_batch_of_new_messages_is_stored_and_consumed(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    messages = await published(uow, 3)

    persisted = await writer(engine, uow).persist(
        [Envelope.for_outbox_message(m) for m in messages], clock.now()
    )

    assert persisted.inserted == 3
    assert persisted.conflicting == frozenset()
    assert sorted(await stored(engine)) == sorted(m.event_id for m in messages)
    assert set((await statuses(engine)).values()) == {OutboxStatus.CONSUMED.value}


async def test_a_batch_mixing_new_redelivered_and_conflicting_messages_sorts_them_out(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """The redelivery is consumed again harmlessly, the new one stored, and the one whose
    event id history holds with other content is reported and left unconsumed."""
    redelivered, new, forged = await published(uow, 3)
    envelopes = {m.id: Envelope.for_outbox_message(m) for m in (redelivered, new, forged)}
    async with uow() as unit:
        original = HistoryEntry.from_envelope(envelopes[forged.id])
        await unit.history.add_many([attrs.evolve(original, message="the stored one")])
        await unit.commit()
    await writer(engine, uow).persist([envelopes[redelivered.id]], clock.now())

    persisted = await writer(engine, uow).persist(list(envelopes.values()), clock.now())

    assert persisted.inserted == 1
    assert persisted.conflicting == frozenset({forged.event_id})
    assert (await stored(engine))[forged.event_id]["message"] == "the stored one"
    assert await statuses(engine) == {
        redelivered.id: OutboxStatus.CONSUMED.value,
        new.id: OutboxStatus.CONSUMED.value,
        forged.id: OutboxStatus.PENDING.value,
    }


@on_postgresql
async def test_the_statement_consumes_only_the_rows_whose_history_it_inserted(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """The batch it cannot take whole goes on to the general writer, all of it, in order."""
    first, second = await published(uow, 2)
    envelopes = [Envelope.for_outbox_message(m) for m in (first, second)]
    async with uow() as unit:
        await unit.history.add_many([HistoryEntry.from_envelope(envelopes[0])])
        await unit.commit()
    rest = Rest()

    persisted = await OneStatementHistoryWriter(engine, rest).persist(envelopes, clock.now())

    assert persisted.inserted == 1
    assert rest.handed == [[first.event_id, second.event_id]]
    assert await statuses(engine) == {
        first.id: OutboxStatus.PENDING.value,
        second.id: OutboxStatus.CONSUMED.value,
    }
    assert (await stored(engine))[second.event_id]["outbox_id"] == second.id


@on_postgresql
async def test_the_statement_needs_no_commit(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """It runs in autocommit: once it returns, another connection sees its writes, and its
    connection is back in the pool (a transaction left open would be rolled back there)."""
    [message] = await published(uow, 1)
    rest = Rest()

    await OneStatementHistoryWriter(engine, rest).persist(
        [Envelope.for_outbox_message(message)], clock.now()
    )

    async with engine.connect() as connection:
        status = await connection.scalar(
            select(outbox_messages.c.status).where(outbox_messages.c.id == message.id)
        )
    assert status == OutboxStatus.CONSUMED.value
    assert rest.handed == []
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]  # QueuePool has it
