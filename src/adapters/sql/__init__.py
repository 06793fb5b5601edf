"""SQL adapters (SQLAlchemy 2 async) for SQLite, PostgreSQL and MariaDB/MySQL."""

from chat_outbox.adapters.sql.engine import BadDatabaseUrl, check_url, create_engine
from chat_outbox.adapters.sql.fresh import OneStatementHistoryWriter
from chat_outbox.adapters.sql.migrate import (
    MIGRATIONS,
    VERSION_TABLE,
    SchemaNotMigrated,
    ensure_migrated,
    run_migrations,
    upgrade,
)
from chat_outbox.adapters.sql.tables import metadata
from chat_outbox.adapters.sql.uow import SqlUnitOfWork, SqlUnitOfWorkFactory

__all__ = [
    "MIGRATIONS",
    "VERSION_TABLE",
    "BadDatabaseUrl",
    "OneStatementHistoryWriter",
    "SchemaNotMigrated",
    "SqlUnitOfWork",
    "SqlUnitOfWorkFactory",
    "check_url",
    "create_engine",
    "ensure_migrated",
    "metadata",
    "run_migrations",
    "upgrade",
]
