"""Migration 0011 on SQLite, PostgreSQL and MariaDB: a database at 0010 that holds rows
gains the journal table, keeps its rows, and journals their transitions from then on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, update

from chat_outbox.adapters.clock import ManualClock, uuid4_event_id
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory, create_engine, upgrade
from chat_outbox.adapters.sql.insights import SqlInsights
from chat_outbox.adapters.sql.tables import outbox_attempts, outbox_messages
from chat_outbox.application.operate import journeys
from chat_outbox.application.record.recording import RecordChatMessage
from chat_outbox.domain import ChatMessage, OutboxEvent, PublishFailure, RetryPolicy, Role
from tests.integration.databases import BACKENDS, fresh_database_url
from tests.integration.test_exact_identifiers import downgrade_to

pytestmark = pytest.mark.integration

T0 = datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_migration_0011_adds_the_journal_beside_rows_recorded_at_0010(
    backend: str, tmp_path: Path
) -> None:
    """A row that failed once at 0010 keeps its count and error after the upgrade, has no
    journal (its journey falls back to the count and latest error), and its next failure is
    journalled; downgrading drops the journal table and nothing else."""
    engine = create_engine(await fresh_database_url(backend, tmp_path, "journal_upgrade"))
    try:
        await upgrade(engine, "0010")
        uow = SqlUnitOfWorkFactory(engine)
        record = RecordChatMessage(uow, ManualClock(T0), uuid4_event_id, "chat")
        outbox_id = (await record(ChatMessage(7, "c-old", Role.USER, "hi"))).id
        async with engine.begin() as connection:
            failed_once = {"retry_count": 1, "last_error": "failed before 0011"}
            await connection.execute(
                update(outbox_messages).where(outbox_messages.c.id == outbox_id),
                failed_once,
            )

        await upgrade(engine)

        insights = SqlInsights(engine)
        assert await insights.journal(outbox_id) == []
        journey = await journeys.journey(uow, insights, outbox_id=outbox_id)
        assert journey is not None
        assert journey.message.retry_count == 1
        details = [step.detail or "" for step in journey.steps]
        assert any("last error: failed before 0011" in detail for detail in details)
        async with uow() as unit:
            row = await unit.outbox.get(outbox_id)
            assert row is not None
            at = T0 + timedelta(minutes=1)
            again = row.record_publish_failure(PublishFailure("after 0011"), at, RetryPolicy())
            assert again is not None
            assert await unit.outbox.apply([again]) == 1
            await unit.commit()
        entries = await insights.journal(outbox_id)
        assert [(e.event, e.attempt, e.error) for e in entries] == [
            (OutboxEvent.PUBLISH_FAILED, 2, "after 0011")
        ]

        await downgrade_to(engine, "0010")
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        assert outbox_attempts.name not in tables
        assert outbox_messages.name in tables
    finally:
        await engine.dispose()
