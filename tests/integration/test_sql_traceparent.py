"""The traceparent column (migration 0005) on real databases: stored, claimed, downgraded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.clock import ManualClock, uuid4_event_id
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory, upgrade
from chat_outbox.adapters.sql.claims import lease_heads
from chat_outbox.adapters.sql.migrate import alembic_config
from chat_outbox.adapters.sql.tables import outbox_messages
from chat_outbox.application.record.recording import record_chat_message
from chat_outbox.domain import ChatMessage

pytestmark = pytest.mark.integration

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
T0 = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


async def record(uow: SqlUnitOfWorkFactory, traceparent: str | None) -> int:
    async with uow() as unit:
        message = await record_chat_message(
            unit,
            ChatMessage.create(
                user_id=7, conversation_id=f"tp-{traceparent}", role="user", message="hi"
            ),
            topic="chat.messages",
            clock=ManualClock(T0),
            event_ids=uuid4_event_id,
            traceparent=traceparent,
        )
        await unit.commit()
    return message.id


async def test_a_claimed_row_carries_its_traceparent(uow: SqlUnitOfWorkFactory) -> None:
    """The traceparent recorded with a message comes back on the claimed row; none stays none."""
    traced, untraced = await record(uow, TRACEPARENT), await record(uow, None)
    async with uow() as unit:
        claimed = await lease_heads(unit.connection, T0, 10, timedelta(seconds=60))
        await unit.commit()
    by_id = {message.id: message.traceparent for message in claimed}
    assert by_id == {traced: TRACEPARENT, untraced: None}


async def test_migration_0005_downgrades_and_upgrades_again(engine: AsyncEngine) -> None:
    """Downgrading to 0004 drops the column and upgrading adds it back, on every database."""

    async def columns() -> set[str]:
        async with engine.connect() as connection:
            found = await connection.run_sync(
                lambda sync: inspect(sync).get_columns(outbox_messages.name)
            )
        return {column["name"] for column in found}

    await downgrade_to(engine, "0004")
    assert "traceparent" not in await columns()
    await upgrade(engine)
    assert "traceparent" in await columns()


async def downgrade_to(engine: AsyncEngine, revision: str) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(lambda sync: command.downgrade(alembic_config(sync), revision))
