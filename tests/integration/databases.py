"""The three real databases the integration suite runs on, each in a test database of its own."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import MetaData, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chat_outbox.adapters.sql import create_engine, upgrade
from chat_outbox.adapters.sql.tables import metadata

# A name of its own lets two checkouts run the suite at once on the same servers.
TEST_DATABASE = os.environ.get("CHAT_OUTBOX_TEST_DATABASE", "chat_outbox_test")
BACKENDS = ("sqlite", "postgresql", "mariadb")


def url_for(backend: str, tmp_dir: Path) -> str:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_dir / 'chat_outbox_test.sqlite3'}"
    if backend == "postgresql":
        return os.environ.get(
            "CHAT_OUTBOX_TEST_POSTGRES_URL",
            f"postgresql+asyncpg://postgres@127.0.0.1:5432/{TEST_DATABASE}",
        )
    return os.environ.get(
        "CHAT_OUTBOX_TEST_MARIADB_URL",
        f"mysql+asyncmy://root@127.0.0.1:3306/{TEST_DATABASE}?charset=utf8mb4",
    )


async def ensure_database(url: str) -> None:
    """Create the test database through the server's default database when it is missing."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return
    name = parsed.database
    admin_db = "postgres" if backend == "postgresql" else "mysql"
    admin = create_async_engine(parsed.set(database=admin_db), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            if backend == "postgresql":
                exists = await connection.scalar(
                    text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
                )
                if not exists:
                    await connection.execute(text(f'CREATE DATABASE "{name}"'))
            else:
                await connection.execute(
                    text(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")
                )
    finally:
        await admin.dispose()


async def fresh_database_url(backend: str, tmp_dir: Path, suffix: str) -> str:
    """An empty database apart from the shared one: a new SQLite file in tmp_dir, or the
    server database TEST_DATABASE_suffix, dropped and created again."""
    url = make_url(url_for(backend, tmp_dir))
    if backend == "sqlite":
        return url.set(database=str(tmp_dir / f"{suffix}.sqlite3")).render_as_string(
            hide_password=False
        )
    url = url.set(database=f"{url.database}_{suffix}")
    admin_db = "postgres" if backend == "postgresql" else "mysql"
    admin = create_async_engine(url.set(database=admin_db), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            if backend == "postgresql":
                await connection.execute(
                    text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
                )
            else:
                await connection.execute(text(f"DROP DATABASE IF EXISTS `{url.database}`"))
    finally:
        await admin.dispose()
    fresh = url.render_as_string(hide_password=False)
    await ensure_database(fresh)
    return fresh


async def fresh_migrated_engine(url: str) -> AsyncEngine:
    """Drop whatever an earlier run left, then build the schema with the real migrations."""
    await ensure_database(url)
    engine = create_engine(url)
    async with engine.begin() as connection:
        # Reflect rather than use today's metadata: older revisions had other tables.
        existing = MetaData()
        await connection.run_sync(existing.reflect)
        await connection.run_sync(existing.drop_all)
    await upgrade(engine)
    return engine


async def truncate(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            if engine.dialect.name == "sqlite":
                await connection.execute(table.delete())
            else:
                await connection.execute(text(f"TRUNCATE TABLE {table.name}"))
