"""The SQL chat-history repository on real databases: idempotent inserts, paging, big text."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.clock import SystemClock, uuid4_event_id
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.adapters.sql.claims import lease_heads
from chat_outbox.adapters.sql.tables import chat_history
from chat_outbox.application.consume.persisting import UnitOfWorkHistoryWriter
from chat_outbox.application.operate.operations import read_history
from chat_outbox.application.record.recording import RecordChatMessage
from chat_outbox.domain import DEFAULT_MAX_MESSAGE_BYTES, ChatMessage, Envelope, HistoryEntry, Role

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
LEASE = timedelta(seconds=60)


def entry(outbox_id: int, conversation: str = "c-1") -> HistoryEntry:
    return HistoryEntry(
        event_id=uuid4_event_id(),
        outbox_id=outbox_id,
        conversation_id=conversation,
        user_id=7,
        role=Role.ASSISTANT,
        message=f"message {outbox_id}",
        recorded_at=T0 + timedelta(seconds=outbox_id),
    )


async def add_many(uow: SqlUnitOfWorkFactory, entries: Sequence[HistoryEntry]) -> int:
    async with uow() as unit:
        inserted = await unit.history.add_many(entries)
        await unit.commit()
    return inserted


async def history_count(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(chat_history)) or 0)


def big_multibyte_message() -> str:
    """Exactly the size limit in UTF-8, made of 1-, 2-, 3- and 4-byte characters."""
    unit = "héllo 世界 🤖🎉 "
    text = unit * (DEFAULT_MAX_MESSAGE_BYTES // len(unit.encode()))
    text += "世" * ((DEFAULT_MAX_MESSAGE_BYTES - len(text.encode())) // 3)
    assert len(text.encode()) == DEFAULT_MAX_MESSAGE_BYTES
    return text


async def test_adding_the_same_entries_twice_inserts_them_once(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """A second add_many of entries already present inserts nothing and reports zero."""
    entries = [entry(n) for n in (1, 2, 3)]
    assert await add_many(uow, entries) == 3
    assert await add_many(uow, entries) == 0
    assert await history_count(engine) == 3


async def test_duplicates_inside_one_call_are_inserted_and_counted_once(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """An entry repeated within one add_many is inserted once and counted once."""
    first, second = entry(1), entry(2)
    assert await add_many(uow, [first, second, first]) == 2
    assert await history_count(engine) == 2


async def test_a_duplicate_insert_racing_an_open_one_is_counted_once(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """Two consumers given the same entry (a redelivery) report one insert between them."""
    duplicate = entry(1)
    async with uow() as first:
        inserted_first = await first.history.add_many([duplicate])
        second = asyncio.create_task(add_many(uow, [duplicate]))
        await asyncio.wait({second}, timeout=0.3)
        await first.commit()
    assert inserted_first + await second == 1
    assert await history_count(engine) == 1


async def test_a_conversation_is_read_in_recording_order_page_by_page(
    uow: SqlUnitOfWorkFactory,
) -> None:
    """for_conversation orders by outbox id and resumes after the last id of the previous page."""
    await add_many(uow, [entry(n, "c-1") for n in (5, 2, 4, 1, 3)])
    await add_many(uow, [entry(n, "c-2") for n in (6, 7)])
    pages = []
    after = 0
    async with uow() as unit:
        while page := await unit.history.for_conversation("c-1", 2, after_outbox_id=after):
            pages.append([e.outbox_id for e in page])
            after = page[-1].outbox_id
    assert pages == [[1, 2], [3, 4], [5]]


async def test_a_maximum_size_multibyte_message_round_trips_byte_exact(
    uow: SqlUnitOfWorkFactory,
) -> None:
    """512 KiB of accented, CJK and emoji text survives the outbox payload and chat history."""
    clock = SystemClock()
    text = big_multibyte_message()
    chat = ChatMessage.create(user_id=7, conversation_id="c-big", role="user", message=text)
    recorded = await RecordChatMessage(uow, clock, uuid4_event_id, "chat")(chat)
    async with uow() as unit:
        [claimed] = await lease_heads(unit.connection, clock.now(), 1, LEASE)
        await unit.commit()
    assert claimed.payload == recorded.payload
    await UnitOfWorkHistoryWriter(uow).persist([Envelope.for_outbox_message(claimed)], clock.now())
    [stored] = await read_history(uow, "c-big")
    assert stored.message.encode() == text.encode()
