"""A record is checked against its outbox row before it has any effect, on SQLite,
PostgreSQL (whose one-statement shortcut holds the check) and MariaDB: a mismatch goes to
the DLQ as forged_or_stale with no history written and no row touched."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.clock import SystemClock, uuid4_event_id
from chat_outbox.adapters.memory import InMemoryBus
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.adapters.sql.tables import chat_history, outbox_messages
from chat_outbox.application.consume.consuming import Consumer, ConsumeReport
from chat_outbox.application.ports import NewOutboxMessage
from chat_outbox.application.record.recording import RecordChatMessage
from chat_outbox.domain import ChatMessage, Envelope, OutboxMessage
from chat_outbox.entrypoints.containers import history_writer

pytestmark = pytest.mark.integration

clock = SystemClock()
FORGED_EVENT_ID = "00000000-0000-0000-0000-0000000000ff"


async def recorded(uow: SqlUnitOfWorkFactory, conversation: str, text: str) -> OutboxMessage:
    chat = ChatMessage.create(user_id=7, conversation_id=conversation, role="user", message=text)
    return await RecordChatMessage(uow, clock, uuid4_event_id, "chat")(chat)


def relayed(row: OutboxMessage, **changes: Any) -> bytes:
    """The record the relay sends for `row`, with envelope or payload fields changed."""
    document = json.loads(Envelope.for_outbox_message(row).encode())
    for name, value in changes.items():
        target = document["payload"] if name in document["payload"] else document
        target[name] = value
    return json.dumps(document).encode()


async def consume(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory, bus: InMemoryBus, *records: bytes
) -> ConsumeReport:
    """Deliver the records as one batch to a consumer wired as in production."""
    for value in records:
        bus.produce_raw(value, json.loads(value)["key"].encode())
    return await Consumer(bus, history_writer(engine, uow), clock).consume_batch(0.0)


async def statuses(engine: AsyncEngine) -> dict[int, str]:
    async with engine.connect() as connection:
        rows = await connection.execute(select(outbox_messages.c.id, outbox_messages.c.status))
        return {outbox_id: status for outbox_id, status in rows}


async def history(engine: AsyncEngine) -> dict[str, str]:
    """Event id -> message text."""
    async with engine.connect() as connection:
        rows = await connection.execute(select(chat_history.c.event_id, chat_history.c.message))
        return {event_id: message for event_id, message in rows}


def reasons(bus: InMemoryBus) -> list[str]:
    return [reason for _, reason in bus.dead_letters]


async def test_another_conversations_outbox_id_is_refused(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """A record naming another conversation's row neither consumes it nor adds history."""
    mine, theirs = await recorded(uow, "c-1", "mine"), await recorded(uow, "c-2", "theirs")
    bus = InMemoryBus()

    await consume(engine, uow, bus, relayed(mine, outbox_id=theirs.id, event_id=FORGED_EVENT_ID))

    assert reasons(bus) == [
        f"forged_or_stale: outbox row {theirs.id} has another event_id and message_key"
    ]
    assert await history(engine) == {}
    assert await statuses(engine) == {mine.id: "pending", theirs.id: "pending"}


async def test_a_reused_event_id_with_other_text_is_refused(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """An existing event id with other text, under another row, stores nothing; the real
    records then persist with their own text."""
    first, second = await recorded(uow, "c-1", "real"), await recorded(uow, "c-1", "second")
    bus = InMemoryBus()

    await consume(engine, uow, bus, relayed(first, message="forged", outbox_id=second.id))

    assert reasons(bus) == [f"forged_or_stale: outbox row {second.id} has another event_id"]
    assert await history(engine) == {}
    assert set((await statuses(engine)).values()) == {"pending"}
    report = await consume(engine, uow, bus, relayed(first), relayed(second))
    assert report.persisted == 2
    assert await history(engine) == {first.event_id: "real", second.event_id: "second"}


async def test_an_outbox_id_with_no_row_is_refused(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """An outbox id no row has adds no history."""
    row = await recorded(uow, "c-1", "hello")
    bus = InMemoryBus()

    await consume(engine, uow, bus, relayed(row, outbox_id=row.id + 1000))

    assert reasons(bus) == [f"forged_or_stale: no outbox row {row.id + 1000}"]
    assert await history(engine) == {}
    assert await statuses(engine) == {row.id: "pending"}


async def test_a_row_of_another_biz_type_is_refused(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """A chat record naming a row of another type (its id, event id and key) leaves it be."""
    async with uow() as unit:
        other = await unit.outbox.add(
            NewOutboxMessage(
                event_id=FORGED_EVENT_ID,
                biz_type="order_created",
                topic="orders",
                message_key="c-1",
                payload="{}",
                max_retry=20,
                created_at=clock.now(),
            )
        )
        await unit.commit()
    row = await recorded(uow, "c-1", "hi")
    bus = InMemoryBus()

    await consume(engine, uow, bus, relayed(row, outbox_id=other.id, event_id=other.event_id))

    assert reasons(bus) == [f"forged_or_stale: outbox row {other.id} has another biz_type"]
    assert await history(engine) == {}
    assert await statuses(engine) == {other.id: "pending", row.id: "pending"}


async def test_forgeries_in_a_batch_of_valid_records_touch_nothing(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """Valid and forged records in one batch (the shortcut takes the valid ones, the unit
    of work classifies the rest): valid ones persist and are consumed, forged ones are
    dead-lettered with their reasons and change nothing."""
    a, b = await recorded(uow, "c-1", "a"), await recorded(uow, "c-2", "b")
    bus = InMemoryBus()

    report = await consume(
        engine,
        uow,
        bus,
        relayed(a),
        relayed(a, outbox_id=b.id, event_id=FORGED_EVENT_ID),
        relayed(b, outbox_id=b.id + 1000),
    )

    assert (report.persisted, report.dead_lettered) == (1, 2)
    assert [r.split(":")[0] for r in reasons(bus)] == ["forged_or_stale"] * 2
    assert await history(engine) == {a.event_id: "a"}
    assert await statuses(engine) == {a.id: "consumed", b.id: "pending"}


async def test_a_redelivery_after_its_row_was_purged_is_a_harmless_duplicate(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """Once retention purged its consumed row, a record already in history is a duplicate:
    not dead-lettered, history unchanged; other text under that event id is a conflict."""
    row = await recorded(uow, "c-1", "kept")
    bus = InMemoryBus()
    await consume(engine, uow, bus, relayed(row))
    async with uow() as unit:
        assert await unit.outbox.purge_consumed(clock.now() + timedelta(seconds=1), 10) == 1
        await unit.commit()

    report = await consume(engine, uow, bus, relayed(row))
    assert (report.duplicates, report.dead_lettered) == (1, 0)
    await consume(engine, uow, bus, relayed(row, message="rewritten"))

    assert len(reasons(bus)) == 1
    assert "with a different payload than the one in chat history" in reasons(bus)[0]
    assert await history(engine) == {row.event_id: "kept"}
    assert await statuses(engine) == {}
