"""The relay and event types besides chat, on SQLite, PostgreSQL and MariaDB: a registered
type's row is published in its own envelope under its key and on its topic; a row of a type
the relay does not know goes dead at once, saying so, instead of waiting for ever."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox import Event, EventType
from chat_outbox.adapters.clock import SystemClock, uuid4_event_id
from chat_outbox.adapters.codec import FastEnvelopeCodec
from chat_outbox.adapters.memory import InMemoryBus
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.adapters.sql.tables import outbox_messages
from chat_outbox.application.ports import NewOutboxMessage
from chat_outbox.application.record.recording import RecordChatMessage, event_row
from chat_outbox.domain import ChatMessage, OutboxMessage
from chat_outbox.domain.envelope import EventEnvelope, decode_any
from tests.integration.relays import leasing_relay

pytestmark = pytest.mark.integration

clock = SystemClock()
FINISHED = EventType("agent_run.finished", topic="agent-runs")


async def added(uow: SqlUnitOfWorkFactory, row: NewOutboxMessage) -> OutboxMessage:
    async with uow() as unit:
        message = await unit.outbox.add(row)
        await unit.commit()
    return message


async def chat(uow: SqlUnitOfWorkFactory, conversation: str, text: str) -> OutboxMessage:
    message = ChatMessage.create(user_id=7, conversation_id=conversation, role="user", message=text)
    return await RecordChatMessage(uow, clock, uuid4_event_id, "chat")(message)


def finished(key: str, payload: object) -> NewOutboxMessage:
    return event_row(
        FINISHED,
        Event(FINISHED.name, key, payload),
        event_id=uuid4_event_id(),
        topic="chat",
        created_at=clock.now(),
    )


async def rows(engine: AsyncEngine) -> dict[int, tuple[str, str | None]]:
    t = outbox_messages
    async with engine.connect() as connection:
        result = await connection.execute(select(t.c.id, t.c.status, t.c.last_error))
        return {outbox_id: (status, error) for outbox_id, status, error in result}


async def test_a_registered_types_row_is_published_in_its_envelope_on_its_topic(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    row = await added(uow, finished("run-7", {"run_id": 7, "tokens": [1, 2.5, None]}))
    bus = InMemoryBus()
    codec = FastEnvelopeCodec(frozenset({FINISHED.name}))

    report = await leasing_relay(uow, bus, clock, codec=codec).relay_due()

    assert report.published == 1
    [record] = bus.log
    assert (record.topic, record.key) == ("agent-runs", b"run-7")
    assert dict(record.headers)["biz_type"] == b"agent_run.finished"
    assert record.value is not None
    envelope = decode_any(record.value)
    assert envelope == EventEnvelope.for_outbox_message(row)
    assert json.loads(record.value)["payload"] == {"run_id": 7, "tokens": [1, 2.5, None]}
    assert await rows(engine) == {row.id: ("published", None)}


async def test_a_row_of_a_type_the_relay_does_not_know_goes_dead_at_once_saying_so(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """It does not wait: dead on the first round with a clear reason, visible to operators;
    its key's later row waits behind it as behind any dead row; other keys go on."""
    unknown = await added(uow, finished("c-1", {"run_id": 1}))
    behind = await chat(uow, "c-1", "after it")
    other = await chat(uow, "c-2", "elsewhere")
    bus = InMemoryBus()

    report = await leasing_relay(uow, bus, clock, codec=FastEnvelopeCodec()).relay_due()

    assert (report.published, report.dead) == (1, 1)
    assert await rows(engine) == {
        unknown.id: (
            "dead",
            "unknown event type 'agent_run.finished': no type of that name is registered "
            "in this relay",
        ),
        behind.id: ("pending", None),
        other.id: ("published", None),
    }
    assert [record.key for record in bus.log] == [b"c-2"]
