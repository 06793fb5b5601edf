"""SQL adapters (SQLAlchemy 2 async) for SQLite, PostgreSQL and MariaDB/MySQL."""

from adapters.sql.engine import BadDatabaseUrl, create_engine
from adapters.sql.migrate import upgrade
from adapters.sql.uow import SqlUnitOfWork, SqlUnitOfWorkFactory

__all__ = ["BadDatabaseUrl", "SqlUnitOfWork", "SqlUnitOfWorkFactory", "create_engine", "upgrade"]
