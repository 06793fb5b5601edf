"""The dashboard's SQL reads on SQLite, PostgreSQL and MariaDB: activity per minute, dead
rows by error text and death time, live relays, a message's history entry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.clock import ManualClock, uuid4_event_id
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.adapters.sql.insights import SqlInsights
from chat_outbox.application.operate.insights import DeadQuery, RelayMember
from chat_outbox.application.record.recording import record_chat_message
from chat_outbox.domain import (
    ChatMessage,
    HistoryEntry,
    OutboxStatus,
    PublishFailure,
    RetryPolicy,
    Role,
)

pytestmark = pytest.mark.integration

START = datetime(2026, 5, 6, 7, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


async def record(
    uow: SqlUnitOfWorkFactory,
    at: datetime,
    conversation: str = "c-1",
    *,
    published: datetime | None = None,
    consumed: datetime | None = None,
    dead: str | None = None,
) -> int:
    """A row recorded at `at`, then published, consumed or killed by domain transitions."""
    async with uow() as unit:
        chat = ChatMessage.create(
            user_id=7, conversation_id=conversation, role="user", message="hi"
        )
        message = await record_chat_message(
            unit, chat, topic="chat", clock=ManualClock(at), event_ids=uuid4_event_id
        )
        transitions = []
        if published is not None:
            transitions.append(message.mark_published(published))
        if consumed is not None:
            transitions.append(message.mark_consumed(consumed))
        if dead is not None:
            transitions.append(
                message.record_publish_failure(PublishFailure.fatal(dead), at, RetryPolicy())
            )
        for transition in transitions:
            assert transition is not None
            assert await unit.outbox.apply([transition]) == 1
        await unit.commit()
    return message.id


async def test_activity_counts_each_timestamp_in_its_minute(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """Recorded, published and consumed rows land in the minute of their own timestamp;
    rows outside the window are not counted."""
    await record(uow, START - MINUTE)  # before the window
    await record(uow, START, published=START + 2 * MINUTE, consumed=START + 2.5 * MINUTE)
    await record(uow, START + 0.9 * MINUTE, published=START + 2 * MINUTE)
    await record(uow, START + 4 * MINUTE + timedelta(seconds=59))
    await record(uow, START + 5 * MINUTE)  # just past the end

    activity = await SqlInsights(engine).activity(START, MINUTE, 5)

    assert activity.recorded == (2, 0, 0, 0, 1)
    assert activity.published == (0, 0, 2, 0, 0)
    assert activity.consumed == (0, 0, 1, 0, 0)


async def test_dead_rows_are_found_by_error_text_whatever_its_case_and_wildcards(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    size = await record(uow, START, dead="MessageSizeTooLarge: 100%_full")
    await record(uow, START, "c-2", dead="InvalidTopic")
    await record(uow, START, "c-3", dead="100 percent full")
    insights = SqlInsights(engine)

    async def ids(**query: object) -> list[int]:
        return [m.id for m in await insights.dead(DeadQuery(**query), 10)]  # type: ignore[arg-type]

    assert await ids(error_contains="messagesizetoolarge") == [size]
    assert await ids(error_contains="100%_") == [size]
    assert await ids(error_contains="100%_", conversation_id="c-2") == []
    assert len(await ids()) == 3


async def test_dead_rows_are_found_by_the_exact_text_of_a_non_ascii_error(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """Python's lower() is not the database's (SQLite lowers ASCII only, and 'İ' lowers to
    two characters in Python): the error as written must always find its row."""
    overflow = await record(uow, START, dead="Überlauf in İstanbul: 100%")
    await record(uow, START, "c-2", dead="InvalidTopic")
    insights = SqlInsights(engine)

    async def ids(needle: str) -> list[int]:
        return [m.id for m in await insights.dead(DeadQuery(error_contains=needle), 10)]

    assert await ids("Überlauf") == [overflow]
    assert await ids("İstanbul") == [overflow]
    assert await ids("ÜBERLAUF in İSTANBUL") == [overflow]  # ASCII case is ignored everywhere


async def test_dead_rows_are_found_by_when_they_died(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    early = await record(uow, START, dead="x")
    late = await record(uow, START + 10 * MINUTE, "c-2", dead="x")
    insights = SqlInsights(engine)
    before = await insights.dead(DeadQuery(died_before=START + MINUTE), 10)
    since = await insights.dead(DeadQuery(died_since=START + MINUTE), 10)
    assert [m.id for m in before] == [early]
    assert [m.id for m in since] == [late]


async def test_counts_by_type_split_each_type_by_status(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    await record(uow, START)
    await record(uow, START, published=START)
    await record(uow, START, "c-2", dead="x")
    counts = await SqlInsights(engine).counts_by_type()
    assert counts == {
        "chat_history_persist": {
            OutboxStatus.PENDING: 1,
            OutboxStatus.PUBLISHED: 1,
            OutboxStatus.DEAD: 1,
        }
    }


async def test_only_relays_still_alive_are_listed_in_member_order(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    async with uow() as unit:
        await unit.relays.beat("relay-b", START, START + MINUTE)
        await unit.relays.beat("relay-a", START, START + MINUTE)
        await unit.relays.beat("relay-gone", START - 2 * MINUTE, START - MINUTE)
        await unit.commit()
    members = await SqlInsights(engine).relay_members(START)
    assert members == [
        RelayMember("relay-a", START + MINUTE),
        RelayMember("relay-b", START + MINUTE),
    ]


async def test_a_messages_history_entry_and_its_conversations_rows_are_read(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    first = await record(uow, START, "c-9", published=START, consumed=START + MINUTE)
    second = await record(uow, START + MINUTE, "c-9")
    await record(uow, START, "c-other")
    async with uow() as unit:
        message = await unit.outbox.get(first)
        assert message is not None
        entry = HistoryEntry(message.event_id, first, "c-9", 7, Role.USER, "hi", START)
        await unit.history.add_many([entry])
        await unit.commit()
    insights = SqlInsights(engine)

    persisted = await insights.persisted(message.event_id)
    rows = await insights.conversation_rows("c-9", 10)

    assert persisted is not None
    assert persisted.entry == entry
    assert [row.id for row in rows] == [first, second]
    assert [m.id for m in await insights.messages([second, first, 10**12])] == [first, second]
    assert await insights.persisted("no-such-event") is None
