"""Migration 0012 on SQLite, PostgreSQL and MariaDB: a chat-only database at 0011 gains the
event inbox, keeps its rows, and relays and consumes them as it did; downgrading drops the
inbox and nothing else."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect, select

from chat_outbox.adapters.clock import ManualClock, SystemClock, uuid4_event_id
from chat_outbox.adapters.memory import InMemoryBus
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory, create_engine, upgrade
from chat_outbox.adapters.sql.tables import chat_history, event_inbox, outbox_messages
from chat_outbox.application.consume.consuming import Consumer
from chat_outbox.application.record.recording import RecordChatMessage
from chat_outbox.domain import ChatMessage, Role
from chat_outbox.entrypoints.containers import history_writer
from tests.integration.databases import BACKENDS, fresh_database_url
from tests.integration.relays import leasing_relay
from tests.integration.test_exact_identifiers import downgrade_to

pytestmark = pytest.mark.integration

T0 = datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_migration_0012_leaves_a_chat_only_database_working_as_before(
    backend: str, tmp_path: Path
) -> None:
    engine = create_engine(await fresh_database_url(backend, tmp_path, "inbox_upgrade"))
    try:
        await upgrade(engine, "0011")
        uow = SqlUnitOfWorkFactory(engine)
        record = RecordChatMessage(uow, ManualClock(T0), uuid4_event_id, "chat")
        first = await record(ChatMessage(7, "c-old", Role.USER, "before 0012"))

        await upgrade(engine)

        second = await record(ChatMessage(7, "c-old", Role.ASSISTANT, "after 0012"))
        bus, clock = InMemoryBus(), SystemClock()
        assert (await leasing_relay(uow, bus, clock).relay_due()).published == 1
        assert (await leasing_relay(uow, bus, clock).relay_due()).published == 1
        report = await Consumer(bus, history_writer(engine, uow), clock).consume_batch(0.0)
        assert report.persisted == 2
        async with engine.connect() as connection:
            query = select(outbox_messages.c.id, outbox_messages.c.status)
            statuses = {outbox_id: status for outbox_id, status in await connection.execute(query)}
            texts = (await connection.execute(select(chat_history.c.message))).scalars().all()
            inbox = (await connection.execute(select(event_inbox.c.event_id))).scalars().all()
        assert statuses == {first.id: "consumed", second.id: "consumed"}
        assert sorted(texts) == ["after 0012", "before 0012"]
        assert inbox == []

        await downgrade_to(engine, "0011")
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        assert event_inbox.name not in tables
        assert {outbox_messages.name, chat_history.name} <= set(tables)
    finally:
        await engine.dispose()
