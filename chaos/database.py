"""The chaos database: its own PostgreSQL database, migrated, with a status audit trigger.

The audit table and trigger belong to the harness, not to the project's migrations.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chat_outbox.adapters.sql import upgrade

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/chat_outbox_chaos"
HARNESS_APP = "chaos-harness"
"""application_name of the harness's own connections, which fault injection spares."""

AUDIT_DDL = """
CREATE TABLE chaos_status_audit (
    id bigserial PRIMARY KEY,
    outbox_id bigint NOT NULL,
    old_status text,
    new_status text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE FUNCTION chaos_audit_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO chaos_status_audit (outbox_id, new_status) VALUES (NEW.id, NEW.status);
    ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO chaos_status_audit (outbox_id, old_status, new_status)
        VALUES (NEW.id, OLD.status, NEW.status);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER chaos_status_audit AFTER INSERT OR UPDATE OF status
    ON agent_outbox_messages FOR EACH ROW EXECUTE FUNCTION chaos_audit_status();
"""


def chaos_url(database: str | None = None) -> str:
    """The SQLAlchemy URL of the chaos database (CHAT_OUTBOX_CHAOS_POSTGRES_URL overrides)."""
    url = make_url(os.environ.get("CHAT_OUTBOX_CHAOS_POSTGRES_URL", DEFAULT_URL))
    if database is not None:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


def dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


@asynccontextmanager
async def connection(url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(dsn(url), server_settings={"application_name": HARNESS_APP})
    try:
        yield conn
    finally:
        await conn.close()


def harness_engine(url: str) -> AsyncEngine:
    """An engine for the harness's own reads and writes, spared by fault injection."""
    return create_async_engine(
        url, connect_args={"server_settings": {"application_name": HARNESS_APP}}
    )


async def recreate(url: str, *, audit: bool = True) -> None:
    """Drop and create the chaos database, migrate it, and add the audit trigger."""
    name = make_url(url).database
    admin = await asyncpg.connect(dsn(url, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    engine = harness_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    if audit:
        async with connection(url) as conn:
            await conn.execute(AUDIT_DDL)


async def terminate_backends(url: str) -> int:
    """pg_terminate_backend on every other connection to the chaos database; how many."""
    async with connection(url) as conn:
        killed = await conn.fetchval(
            """SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
               WHERE datname = current_database() AND pid <> pg_backend_pid()
                 AND application_name <> $1""",
            HARNESS_APP,
        )
    return int(killed or 0)


async def consumed_count(conn: asyncpg.Connection) -> int:
    return int(
        await conn.fetchval("SELECT count(*) FROM agent_outbox_messages WHERE status = 'consumed'")
    )
