"""Bring the schema up to date with Alembic, on the application's own async engine.

Alembic is imported only to migrate: checking the schema at a relay's or consumer's start
reads the version table directly (Alembic and what it imports are a fifth of start-up)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.sql.engine import is_transient, unavailable

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
HEAD = "0008"
"""The newest migration's revision; a unit test checks it against the scripts."""
VERSION_TABLE = "alembic_version"


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    from alembic import command

    try:
        async with engine.begin() as connection:
            await connection.run_sync(lambda sync: command.upgrade(alembic_config(sync), revision))
    except Exception as error:
        if is_transient(error):
            raise unavailable(error) from error
        raise


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

    try:
        async with engine.connect() as connection:
            await connection.run_sync(check)
    except Exception as error:
        if is_transient(error):
            raise unavailable(error) from error
        raise
