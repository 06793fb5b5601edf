"""Bring the schema up to date with Alembic, on the application's own async engine or on a
host application's sync connection, in a version table of chat-outbox's own.

Alembic is imported only to migrate: checking the schema at a relay's or consumer's start
reads the version table directly (Alembic and what it imports are a fifth of start-up)."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.sql.engine import is_transient, unavailable
from chat_outbox.adapters.sql.tables import outbox_messages

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
HEAD = "0012"
SCHEMA_CHECK_ATTEMPTS = 3
"""The newest migration's revision; a unit test checks it against the scripts."""
VERSION_TABLE = "chat_outbox_alembic_version"
"""chat-outbox's own version table: a host application's Alembic keeps `alembic_version`."""
SHARED_VERSION_TABLE = "alembic_version"
"""Alembic's default, where chat-outbox kept its revision before it had a table of its own."""

log = structlog.get_logger(__name__)


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def run_migrations(connection: Connection, revision: str = "head") -> None:
    """Upgrade chat-outbox's schema to `revision` on a host's sync connection, first moving
    its revisions out of a shared `alembic_version`. Commits nothing: the caller owns the
    transaction (MariaDB still commits each DDL statement by itself)."""
    from alembic import command
    from alembic.script import ScriptDirectory

    if not connection.in_transaction():
        # Alembic then runs inside the caller's transaction instead of committing its own.
        connection.begin()
    config = alembic_config(connection)
    ours = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
    move_version_rows(connection, ours)
    with host_alembic_proxies_kept():
        command.upgrade(config, revision)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    try:
        async with engine.begin() as connection:
            await connection.run_sync(run_migrations, revision)
    except Exception as error:
        if is_transient(error):
            raise unavailable(error) from error
        raise


def move_version_rows(connection: Connection, ours: Collection[str]) -> None:
    """Move chat-outbox's revisions from `alembic_version` into VERSION_TABLE, leaving any
    other (the host's) rows, and drop `alembic_version` only if that leaves it empty."""
    inspector = inspect(connection)
    if inspector.has_table(VERSION_TABLE) or not inspector.has_table(SHARED_VERSION_TABLE):
        return
    # Without the outbox table a matching id such as '0001' is the host's own revision.
    if not inspector.has_table(outbox_messages.name):
        return
    shared = version_table(SHARED_VERSION_TABLE)
    moved = sorted(set(connection.scalars(select(shared.c.version_num))) & set(ours))
    if not moved:
        return
    own = version_table(VERSION_TABLE)
    own.create(connection)
    connection.execute(own.insert(), [{"version_num": number} for number in moved])
    connection.execute(shared.delete().where(shared.c.version_num.in_(moved)))
    dropped = not connection.scalar(select(func.count()).select_from(shared))
    if dropped:
        shared.drop(connection)
    log.info("version_table_moved", revisions=moved, to=VERSION_TABLE, dropped_shared=dropped)


def version_table(name: str) -> Table:
    # Alembic's own definition of a version table, so its upgrade finds what it would create.
    return Table(
        name,
        MetaData(),
        Column("version_num", String(32), nullable=False),
        PrimaryKeyConstraint("version_num", name=f"{name}_pkc"),
    )


@contextmanager
def host_alembic_proxies_kept() -> Iterator[None]:
    """Alembic's `context` and `op` are module globals that a nested command.upgrade removes
    on exit: run from a host's env.py, put the host's back for the rest of its run."""
    from alembic import context, op

    outer = [getattr(module, "_proxy", None) for module in (context, op)]
    try:
        yield
    finally:
        for proxy in outer:
            if proxy is not None:
                proxy._install_proxy()


class SchemaNotMigrated(RuntimeError):
    """The database schema is missing or older than this code expects."""


async def ensure_migrated(engine: AsyncEngine) -> None:
    def check(connection: Connection) -> None:
        current = None
        if inspect(connection).has_table(VERSION_TABLE):
            current = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
        if current != HEAD:
            raise SchemaNotMigrated(
                f"database schema is at {current or 'nothing'}, this version needs {HEAD}: "
                "run `chat-outbox migrate`"
            )

    for attempt in range(1, SCHEMA_CHECK_ATTEMPTS + 1):
        try:
            async with engine.connect() as connection:
                await connection.run_sync(check)
            return
        except Exception as error:
            if not is_transient(error):
                raise
            if attempt == SCHEMA_CHECK_ATTEMPTS:
                raise unavailable(error) from error
            # A connection cut mid-check (a failover, a killed session) is worth a new one;
            # a database that stays down still fails the start within a second or two.
            log.warning("schema_check_retried", attempt=attempt, error=type(error).__name__)
            await asyncio.sleep(0.5 * attempt)
