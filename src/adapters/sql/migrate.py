"""Bring the schema up to date with Alembic, on the application's own async engine."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sql.engine import is_transient, unavailable

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
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
        current = MigrationContext.configure(connection).get_current_revision()
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        if current != head:
            raise SchemaNotMigrated(
                f"database schema is at {current or 'nothing'}, this version needs {head}: "
                "run `chat-outbox migrate`"
            )

    try:
        async with engine.connect() as connection:
            await connection.run_sync(check)
    except Exception as error:
        if is_transient(error):
            raise unavailable(error) from error
        raise
