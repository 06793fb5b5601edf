"""Engines configured per database, and the translation of connection failures."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chat_outbox.adapters.extras import require
from chat_outbox.application.errors import StoreUnavailable

# Serialization failure and deadlock: the transaction can simply run again.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
# The extra that installs each async driver; aiosqlite comes with the base install.
DRIVER_EXTRAS = {"asyncpg": "postgres", "asyncmy": "mysql"}


class BadDatabaseUrl(ValueError):
    """The database URL cannot be parsed or names no async driver we support."""


def check_url(url: str) -> str:
    """The URL's backend, or BadDatabaseUrl naming what is wrong (driver included)."""
    try:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        if backend not in ("sqlite", "postgresql", "mysql", "mariadb"):
            raise BadDatabaseUrl(
                f"unsupported database {backend!r}: use sqlite, postgresql or mysql"
            )
        if not parsed.get_dialect().is_async:
            raise BadDatabaseUrl(
                f"{parsed.drivername!r} is not an async driver: use sqlite+aiosqlite, "
                "postgresql+asyncpg or mysql+asyncmy"
            )
    except ArgumentError as error:
        raise BadDatabaseUrl(f"cannot parse database URL: {error}") from None
    except BadDatabaseUrl:
        raise
    except ValueError:
        # make_url's own message can quote a piece of the URL, and with an unescaped '/' in
        # the password that piece is the password: say what is wrong, quote nothing.
        raise BadDatabaseUrl(
            "cannot parse database URL: the port is not a number (percent-encode a '/', "
            "'@' or ':' in the password)"
        ) from None
    except ImportError as error:
        raise BadDatabaseUrl(f"database driver not installed: {error}") from None
    return backend


def create_engine(
    url: str, *, pool_size: int = 5, idle_transaction_timeout: timedelta | None = None
) -> AsyncEngine:
    """`idle_transaction_timeout`: the server ends a session idle that long inside a
    transaction, releasing its locks (not on SQLite, whose writers are serialised anyway)."""
    backend = check_url(url)
    _require_driver(url)
    if backend == "sqlite":
        return _sqlite(url)
    if backend in ("postgresql", "mysql", "mariadb"):
        # No pre-ping: it costs a round trip per transaction, and a dropped connection is
        # already invalidated and reported as StoreUnavailable, which every caller retries.
        # hide_parameters: a failed statement's error and log line would quote chat text.
        options: dict[str, Any] = {"pool_size": pool_size, "hide_parameters": True}
        if backend != "postgresql":
            options["isolation_level"] = "READ COMMITTED"
        if idle_transaction_timeout is not None:
            options["connect_args"] = _idle_limit(backend, idle_transaction_timeout)
        return create_async_engine(url, **options)
    raise AssertionError(f"check_url accepted {backend!r}")


def _require_driver(url: str) -> None:
    """A driver from a missing extra is a MissingExtra naming it, not SQLAlchemy's ImportError."""
    parsed = make_url(url)
    driver = parsed.get_driver_name()
    if driver in DRIVER_EXTRAS:
        require(driver, DRIVER_EXTRAS[driver], f"a {parsed.drivername} database URL")


def _idle_limit(backend: str, limit: timedelta) -> dict[str, Any]:
    if backend == "postgresql":
        milliseconds = max(1, round(limit.total_seconds() * 1000))
        return {"server_settings": {"idle_in_transaction_session_timeout": str(milliseconds)}}
    seconds = max(1, round(limit.total_seconds()))
    return {"init_command": f"SET SESSION idle_transaction_timeout = {seconds}"}


def _sqlite(url: str) -> AsyncEngine:
    # hide_parameters: a failed statement's error and log line would quote chat text.
    engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide where transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Take the write lock up front: a read that later upgrades to a write can deadlock.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


# SQLite reports a missing table as an OperationalError too; that one never heals.
PERMANENT_SQLITE_ERRORS = ("no such table", "no such column", "syntax error")


def is_transient(error: BaseException) -> bool:
    if isinstance(error, OperationalError) and any(
        text in str(error.orig) for text in PERMANENT_SQLITE_ERRORS
    ):
        return False
    if isinstance(error, OperationalError | InterfaceError | ConnectionError | TimeoutError):
        return True
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        state = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
        return state in RETRYABLE_SQLSTATES
    return isinstance(error, OSError)


def unavailable(error: BaseException) -> StoreUnavailable:
    """A one-line reason; the driver's message is kept, the URL (and password) is not."""
    detail = str(getattr(error, "orig", None) or error).splitlines()[0] if str(error) else ""
    return StoreUnavailable(f"database unavailable: {type(error).__name__}: {detail}"[:500])
