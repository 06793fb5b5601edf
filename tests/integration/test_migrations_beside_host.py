"""chat-outbox's Alembic version table beside a host application's own `alembic_version`."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from chat_outbox.adapters.clock import SystemClock, uuid4_event_id
from chat_outbox.adapters.sql import (
    VERSION_TABLE,
    SchemaNotMigrated,
    SqlUnitOfWorkFactory,
    create_engine,
    ensure_migrated,
    migrate,
    run_migrations,
    upgrade,
)
from chat_outbox.adapters.sql.migrate import HEAD, SHARED_VERSION_TABLE, version_table
from chat_outbox.adapters.sql.tables import outbox_messages, relay_members
from chat_outbox.application.record.recording import record_chat_message
from chat_outbox.domain import ChatMessage
from tests.integration.databases import BACKENDS, fresh_database_url
from tests.integration.test_cli import chat_outbox as run_cli

pytestmark = pytest.mark.integration

HOST_REVISION = "host0001"
host = MetaData()
host_things = Table(
    "host_things",
    host,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", String(20), nullable=False),
)
HOST_ROWS = [(1, "kept"), (2, "also kept")]

HOST_ENV = """
from alembic import context
from chat_outbox.adapters.sql import run_migrations

connection = context.config.attributes["connection"]
run_migrations(connection)
context.configure(connection=connection)
with context.begin_transaction():
    context.run_migrations()
"""
HOST_SCRIPT = f"""
import sqlalchemy as sa
from alembic import op

revision = "{HOST_REVISION}"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("host_things", sa.Column("id", sa.Integer, primary_key=True))
"""


@pytest.fixture(params=BACKENDS)
async def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An engine on an empty database of its own, never the suite's shared one."""
    engine = create_engine(await fresh_database_url(request.param, tmp_path, "beside_host"))
    yield engine
    await engine.dispose()


def read_versions(connection: Connection, table: str) -> list[str] | None:
    if not inspect(connection).has_table(table):
        return None
    return sorted(connection.scalars(select(version_table(table).c.version_num)))


async def versions(engine: AsyncEngine, table: str) -> list[str] | None:
    """The revisions in `table`, or None when there is no such table."""
    async with engine.connect() as connection:
        return await connection.run_sync(read_versions, table)


async def has_table(engine: AsyncEngine, name: str) -> bool:
    async with engine.connect() as connection:
        return await connection.run_sync(lambda sync: inspect(sync).has_table(name))


async def rows(engine: AsyncEngine, table: Table) -> list[tuple[Any, ...]]:
    async with engine.connect() as connection:
        result = await connection.execute(select(table).order_by(*table.primary_key))
        return [tuple(row) for row in result]


async def add_host(engine: AsyncEngine, revision: str = HOST_REVISION) -> None:
    """The host application's own table with rows, and its revision in `alembic_version`."""
    shared = version_table(SHARED_VERSION_TABLE)
    async with engine.begin() as connection:
        await connection.run_sync(host.create_all)
        await connection.run_sync(lambda sync: shared.create(sync, checkfirst=True))
        await connection.execute(host_things.insert(), [dict(id=i, name=n) for i, n in HOST_ROWS])
        await connection.execute(shared.insert().values(version_num=revision))


async def migrate_the_old_way(
    engine: AsyncEngine, revision: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alembic's upgrade as chat-outbox ran it before: its revision in `alembic_version`."""
    with monkeypatch.context() as patch:
        patch.setattr(migrate, "VERSION_TABLE", SHARED_VERSION_TABLE)
        async with engine.begin() as connection:
            await connection.run_sync(
                lambda sync: command.upgrade(migrate.alembic_config(sync), revision)
            )


async def record_messages(engine: AsyncEngine, count: int) -> None:
    uow = SqlUnitOfWorkFactory(engine)
    for number in range(count):
        async with uow() as unit:
            chat = ChatMessage.create(
                user_id=7, conversation_id="old-deployment", role="user", message=f"m{number}"
            )
            await record_chat_message(
                unit, chat, topic="chat.messages", clock=SystemClock(), event_ids=uuid4_event_id
            )
            await unit.commit()


async def test_a_host_alembic_version_and_tables_stay_as_they_were(fresh: AsyncEngine) -> None:
    """Migrating beside a host's `alembic_version` leaves the host's table and revision
    exactly as they were and puts chat-outbox's head in a table of its own."""
    await add_host(fresh)
    await upgrade(fresh)
    assert await rows(fresh, host_things) == HOST_ROWS
    assert await versions(fresh, SHARED_VERSION_TABLE) == [HOST_REVISION]
    assert await versions(fresh, VERSION_TABLE) == [HEAD]
    await ensure_migrated(fresh)


async def test_a_host_revision_named_like_ours_stays_where_no_outbox_was_migrated(
    fresh: AsyncEngine,
) -> None:
    """A host revision that happens to be called '0001', in a database chat-outbox never
    migrated (no outbox table), is the host's: it stays in `alembic_version`."""
    await add_host(fresh, revision="0001")
    await upgrade(fresh)
    assert await versions(fresh, SHARED_VERSION_TABLE) == ["0001"]
    assert await versions(fresh, VERSION_TABLE) == [HEAD]


async def test_an_old_deployment_moves_its_revision_and_keeps_its_messages(
    fresh: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """upgrade() takes a deployment at 0007 in `alembic_version` on to head: every outbox
    row stays, the revision moves to chat-outbox's table, the emptied table is dropped."""
    await migrate_the_old_way(fresh, "0007", monkeypatch)
    await record_messages(fresh, 3)
    before = await rows(fresh, outbox_messages)
    with capture_logs() as logs:
        await upgrade(fresh)
    assert len(before) == 3
    assert await rows(fresh, outbox_messages) == before
    assert await versions(fresh, VERSION_TABLE) == [HEAD]
    assert await versions(fresh, SHARED_VERSION_TABLE) is None
    assert await has_table(fresh, relay_members.name)
    [moved] = [line for line in logs if line["event"] == "version_table_moved"]
    assert (moved["revisions"], moved["dropped_shared"]) == (["0007"], True)
    await ensure_migrated(fresh)


async def test_a_shared_alembic_version_keeps_the_hosts_row_and_loses_ours(
    fresh: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From an `alembic_version` holding the host's revision and chat-outbox's, upgrade()
    takes only chat-outbox's and leaves the host's row and table; the start-up check reads
    only chat-outbox's table."""
    await migrate_the_old_way(fresh, "head", monkeypatch)
    await add_host(fresh)
    assert await versions(fresh, SHARED_VERSION_TABLE) == sorted([HEAD, HOST_REVISION])
    with pytest.raises(SchemaNotMigrated):
        await ensure_migrated(fresh)
    await upgrade(fresh)
    assert await versions(fresh, SHARED_VERSION_TABLE) == [HOST_REVISION]
    assert await versions(fresh, VERSION_TABLE) == [HEAD]
    assert await rows(fresh, host_things) == HOST_ROWS
    await ensure_migrated(fresh)


async def test_a_host_alembic_env_runs_chat_outbox_migrations_beside_its_own(
    fresh: AsyncEngine, tmp_path: Path
) -> None:
    """A host env.py that calls run_migrations before its own migrations gets both: its
    table and revision in `alembic_version`, chat-outbox's head in chat-outbox's table."""
    scripts = tmp_path / "host_migrations"
    (scripts / "versions").mkdir(parents=True)
    (scripts / "env.py").write_text(HOST_ENV)
    (scripts / "versions" / f"{HOST_REVISION}.py").write_text(HOST_SCRIPT)
    config = Config()
    config.set_main_option("script_location", str(scripts))

    def host_upgrade(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    async with fresh.begin() as connection:
        await connection.run_sync(host_upgrade)
    assert await has_table(fresh, host_things.name)
    assert await versions(fresh, SHARED_VERSION_TABLE) == [HOST_REVISION]
    assert await versions(fresh, VERSION_TABLE) == [HEAD]


# MariaDB commits each DDL statement by itself, so only these two can take it all back.
@pytest.mark.parametrize("fresh", ["sqlite", "postgresql"], indirect=True)
async def test_run_migrations_moves_and_upgrades_in_the_callers_transaction(
    fresh: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """run_migrations commits nothing: the caller's rollback undoes both the move out of
    `alembic_version` and the upgrade."""
    await migrate_the_old_way(fresh, "0007", monkeypatch)
    async with fresh.connect() as connection:
        await connection.run_sync(run_migrations)
        assert await connection.run_sync(read_versions, VERSION_TABLE) == [HEAD]
        await connection.rollback()
    assert await versions(fresh, SHARED_VERSION_TABLE) == ["0007"]
    assert await versions(fresh, VERSION_TABLE) is None
    assert not await has_table(fresh, relay_members.name)


def test_the_migrate_command_leaves_a_foreign_alembic_version_untouched(tmp_path: Path) -> None:
    """`chat-outbox migrate` on a SQLite file with a host's `alembic_version` exits 0 and
    leaves that table as it was, and the next command finds the schema migrated."""
    path = tmp_path / "host.sqlite3"
    with closing(sqlite3.connect(path)) as database, database:
        database.executescript(
            "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
            "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num));"
            f"INSERT INTO alembic_version VALUES ('{HOST_REVISION}');"
        )
    env = {"CHAT_OUTBOX_DATABASE_URL": f"sqlite+aiosqlite:///{path}"}
    migrated = run_cli("migrate", cwd=tmp_path, env=env)
    assert migrated.returncode == 0, migrated.stderr
    with closing(sqlite3.connect(path)) as database:
        assert database.execute("SELECT * FROM alembic_version").fetchall() == [(HOST_REVISION,)]
        own = database.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall()
    assert own == [(HEAD,)]
    stats = run_cli("stats", "--json", cwd=tmp_path, env=env)
    assert stats.returncode == 0, stats.stderr
