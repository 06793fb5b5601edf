"""SQL adapters (SQLAlchemy 2 async) for SQLite, PostgreSQL and MariaDB/MySQL."""

from adapters.sql.engine import BadDatabaseUrl, check_url, create_engine
from adapters.sql.fresh import SqlFreshHistory, fresh_history
from adapters.sql.migrate import SchemaNotMigrated, ensure_migrated, upgrade
from adapters.sql.uow import SqlUnitOfWork, SqlUnitOfWorkFactory

__all__ = [
    "BadDatabaseUrl",
    "SchemaNotMigrated",
    "SqlFreshHistory",
    "SqlUnitOfWork",
    "SqlUnitOfWorkFactory",
    "check_url",
    "create_engine",
    "ensure_migrated",
    "fresh_history",
    "upgrade",
]
