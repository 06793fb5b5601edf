"""Recording events of registered types through the public API, in the host's transaction,
on SQLite, PostgreSQL and MariaDB: what a type refuses, or a type nobody registered, is
refused before any write; an idempotency key records an event once."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chat_outbox import (
    Event,
    EventType,
    IdempotencyConflict,
    InvalidEvent,
    Outbox,
    Settings,
    UnknownEventType,
)
from chat_outbox.adapters.sql.tables import outbox_messages

pytestmark = pytest.mark.integration


def positive_run(payload: Any) -> None:
    if not isinstance(payload, dict) or not isinstance(payload.get("run_id"), int):
        raise ValueError("run_id must be an integer")


FINISHED = EventType("agent_run.finished", validate=positive_run, topic="agent-runs")


@pytest.fixture
def outbox(engine: AsyncEngine) -> Outbox:
    outbox = Outbox(Settings.of(database_url=engine.url.render_as_string(hide_password=False)))
    outbox.register(FINISHED)
    return outbox


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def stored(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    t = outbox_messages
    query = select(t.c.biz_type, t.c.message_key, t.c.topic, t.c.payload, t.c.status)
    async with engine.connect() as connection:
        return [tuple(row) for row in await connection.execute(query.order_by(t.c.id))]


async def test_an_event_is_recorded_pending_under_its_key_on_its_types_topic(
    engine: AsyncEngine, outbox: Outbox, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as session, session.begin():
        recorded = await outbox.record(session, Event(FINISHED.name, "run-7", {"run_id": 7}))
    assert recorded.replayed is False
    assert await stored(engine) == [
        ("agent_run.finished", "run-7", "agent-runs", '{"run_id":7}', "pending")
    ]


@pytest.mark.parametrize(
    ("event", "error", "says"),
    [
        (Event("agent_run.started", "k", {}), UnknownEventType, "is not registered"),
        (Event("agent_run.finished", "k", {"run": 1}), InvalidEvent, "run_id must be an integer"),
        (Event("agent_run.finished", "", {"run_id": 1}), InvalidEvent, "event key must be"),
        (Event("agent_run.finished", "k", {"run_id": float("nan")}), InvalidEvent, "NaN"),
    ],
)
async def test_an_event_refused_at_record_time_writes_nothing(
    engine: AsyncEngine,
    outbox: Outbox,
    sessions: async_sessionmaker[AsyncSession],
    event: Event,
    error: type[Exception],
    says: str,
) -> None:
    async with sessions() as session:
        with pytest.raises(error, match=says):
            await outbox.record(session, event)
        await session.commit()
    assert await stored(engine) == []


async def test_an_idempotency_key_records_an_event_once_and_refuses_another_payload(
    engine: AsyncEngine, outbox: Outbox, sessions: async_sessionmaker[AsyncSession]
) -> None:
    event = Event(FINISHED.name, "run-7", {"run_id": 7})
    async with sessions() as session, session.begin():
        first = await outbox.record(session, event, idempotency_key="finish-7")
    async with sessions() as session, session.begin():
        again = await outbox.record(session, event, idempotency_key="finish-7")
    assert (again.outbox_id, again.event_id, again.replayed) == (
        first.outbox_id,
        first.event_id,
        True,
    )
    async with sessions() as session:
        with pytest.raises(IdempotencyConflict):
            await outbox.record(
                session, Event(FINISHED.name, "run-7", {"run_id": 8}), idempotency_key="finish-7"
            )
    assert len(await stored(engine)) == 1
