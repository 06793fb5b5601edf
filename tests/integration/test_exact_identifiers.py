"""Identifiers compare byte for byte on every database: "c1 " and "c1" are two conversations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.clock import ManualClock, uuid4_event_id
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory, create_engine, upgrade
from chat_outbox.adapters.sql.migrate import alembic_config
from chat_outbox.adapters.sql.tables import metadata
from chat_outbox.application.operate.operations import (
    held_behind_dead,
    list_dead,
    read_history,
    requeue_dead,
)
from chat_outbox.application.ports import DeadSelector
from chat_outbox.application.record.recording import record_chat_message
from chat_outbox.domain import ChatMessage, HistoryEntry, PublishFailure, RetryPolicy, Role
from tests.integration.databases import fresh_database_url

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
# Each pair differs only by trailing spaces, which a PAD SPACE collation ignores.
TWINS = [("c1", "c1 "), ("c1 ", "c1  ")]


async def record(
    uow: SqlUnitOfWorkFactory, conversation: str, event_id: str | None = None, dead: bool = False
) -> int:
    """One outbox row in the conversation, left pending or moved to dead."""
    async with uow() as unit:
        chat = ChatMessage.create(user_id=7, conversation_id=conversation, role="user", message="m")
        ids = (lambda: event_id) if event_id is not None else uuid4_event_id
        message = await record_chat_message(
            unit, chat, topic="chat", clock=ManualClock(T0), event_ids=ids
        )
        if dead:
            failed = message.record_publish_failure(PublishFailure.fatal("no"), T0, RetryPolicy())
            assert failed is not None
            assert await unit.outbox.apply([failed]) == 1
        await unit.commit()
    return message.id


def entry(outbox_id: int, conversation: str, event_id: str) -> HistoryEntry:
    return HistoryEntry(
        event_id=event_id,
        outbox_id=outbox_id,
        conversation_id=conversation,
        user_id=7,
        role=Role.USER,
        message=f"in {conversation!r}",
        recorded_at=T0 + timedelta(seconds=outbox_id),
    )


@pytest.mark.parametrize(("one", "other"), TWINS)
async def test_history_reads_keep_conversations_that_differ_by_trailing_spaces_apart(
    uow: SqlUnitOfWorkFactory, one: str, other: str
) -> None:
    """A history read returns only its own conversation's messages, not its padded twin's."""
    async with uow() as unit:
        await unit.history.add_many([entry(1, one, "e-1"), entry(2, other, "e-2")])
        await unit.commit()
    assert [e.outbox_id for e in await read_history(uow, one)] == [1]
    assert [e.outbox_id for e in await read_history(uow, other)] == [2]


@pytest.mark.parametrize(("one", "other"), TWINS)
async def test_dead_requeue_by_conversation_leaves_the_padded_twin_dead(
    uow: SqlUnitOfWorkFactory, one: str, other: str
) -> None:
    """Selecting dead rows by conversation matches its exact id only, in listing and requeue,
    and a dead row holds back only its own conversation."""
    mine = await record(uow, one, dead=True)
    twin = await record(uow, other, dead=True)
    await record(uow, other)  # pending behind the twin's dead row
    selector = DeadSelector(conversation_id=one)
    assert [m.id for m in await list_dead(uow, selector)] == [mine]
    assert await held_behind_dead(uow, [one]) == {one: 0}
    assert await requeue_dead(uow, ManualClock(T0 + timedelta(hours=1)), selector) == 1
    assert [m.id for m in await list_dead(uow, DeadSelector())] == [twin]


async def test_event_ids_and_message_keys_that_differ_by_trailing_spaces_are_distinct(
    uow: SqlUnitOfWorkFactory,
) -> None:
    """Two outbox rows and two history rows whose event ids differ by a trailing space are
    both stored: the unique keys compare exact bytes."""
    await record(uow, "c1", event_id="e-1")
    await record(uow, "c1", event_id="e-1 ")
    async with uow() as unit:
        added = await unit.history.add_many([entry(1, "c1", "e-1"), entry(2, "c1", "e-1 ")])
        await unit.commit()
    assert added == 2
    assert [e.event_id for e in await read_history(uow, "c1")] == ["e-1", "e-1 "]


# PostgreSQL and SQLite compare strings without padding already.
@pytest.mark.parametrize("migrated_engine", ["mariadb"], indirect=True)
async def test_every_text_column_has_a_no_pad_binary_collation_on_mariadb(
    engine: AsyncEngine,
) -> None:
    """After the migrations, each text column of chat-outbox's tables compares bytes with
    no padding (utf8mb4_nopad_bin on MariaDB, utf8mb4_0900_bin on MySQL 8)."""
    query = text(
        "SELECT table_name, column_name, collation_name FROM information_schema.columns"
        " WHERE table_schema = DATABASE() AND collation_name IS NOT NULL"
    )
    async with engine.connect() as connection:
        found = [tuple(row) for row in await connection.execute(query)]
    ours = [row for row in found if row[0] in metadata.tables]
    assert {row[0] for row in ours} == set(metadata.tables)
    assert [row for row in ours if row[2] not in ("utf8mb4_nopad_bin", "utf8mb4_0900_bin")] == []


async def test_migration_0009_keeps_the_rows_of_a_mariadb_database_at_0008(
    tmp_path: Path,
) -> None:
    """Upgrading a MariaDB schema that holds rows converts its collation and keeps every row,
    and its downgrade goes back to utf8mb4_bin."""
    engine = create_engine(await fresh_database_url("mariadb", tmp_path, "no_pad"))
    try:
        await upgrade(engine, "0008")
        uow = SqlUnitOfWorkFactory(engine)
        before = await record(uow, "c1 ")
        await upgrade(engine)
        assert await table_collation(engine) == "utf8mb4_nopad_bin"
        async with uow() as unit:
            kept = await unit.outbox.get(before)
        assert kept is not None
        assert kept.message_key == "c1 "
        await downgrade_to(engine, "0008")
        assert await table_collation(engine) == "utf8mb4_bin"
    finally:
        await engine.dispose()


async def table_collation(engine: AsyncEngine) -> str:
    """The outbox table's default collation, which CONVERT TO sets with its columns'."""
    query = text(
        "SELECT table_collation FROM information_schema.tables"
        " WHERE table_schema = DATABASE() AND table_name = 'agent_outbox_messages'"
    )
    async with engine.connect() as connection:
        return str(await connection.scalar(query))


async def downgrade_to(engine: AsyncEngine, revision: str) -> None:
    """Alembic's downgrade on the engine: chat-outbox itself only ever upgrades."""

    def run(connection: Connection) -> None:
        from alembic import command

        command.downgrade(alembic_config(connection), revision)

    async with engine.begin() as connection:
        await connection.run_sync(run)
