"""The three real databases the integration suite runs on, each in a test database of its own.

Each pytest run names its server databases after itself (`chat_outbox_test_<host>_<pid>_<random>`,
and that name plus a suffix for the tests that need a database apart), so two runs on one
machine never touch each other's rows; `drop_run_databases` drops them when the run ends,
along with those of earlier runs on this host whose process is gone. A name given in
CHAT_OUTBOX_TEST_DATABASE is used as it is and kept after the run, for a look at what it left.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import zlib
from pathlib import Path

from sqlalchemy import MetaData, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chaos.database import chaos_url
from chat_outbox.adapters.sql import create_engine, upgrade
from chat_outbox.adapters.sql.tables import metadata

RUN_PREFIX = "chat_outbox_test_"
HOST_TAG = f"{zlib.crc32(socket.gethostname().encode()):08x}"[:6]
RUN_NAME = re.compile(
    rf"^{RUN_PREFIX}(?P<host>[0-9a-f]{{6}})_(?P<pid>[0-9]+)_[0-9a-f]{{4}}(?:_.+)?$"
)
"""A per-run database name, or one of its suffixed siblings; the pid says whose run it is."""

EXPLICIT_DATABASE = os.environ.get("CHAT_OUTBOX_TEST_DATABASE", "")
TEST_DATABASE = EXPLICIT_DATABASE or f"{RUN_PREFIX}{HOST_TAG}_{os.getpid()}_{secrets.token_hex(2)}"
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


def _admin_url(url: URL) -> URL:
    """The same server's default database, from which databases are created and dropped."""
    return url.set(database="postgres" if url.get_backend_name() == "postgresql" else "mysql")


def _drop_statement(backend: str, name: str) -> str:
    if backend == "postgresql":
        # FORCE (PostgreSQL 13+) closes the connections a test left open on it.
        return f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    return f"DROP DATABASE IF EXISTS `{name}`"


async def ensure_database(url: str) -> None:
    """Create the test database through the server's default database when it is missing."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return
    name = parsed.database
    admin = create_async_engine(_admin_url(parsed), isolation_level="AUTOCOMMIT")
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
    """An empty database apart from the run's one: a new SQLite file in tmp_dir, or the
    server database <the run's database>_<suffix>, dropped and created again (and dropped
    with the run's own at the end)."""
    url = make_url(url_for(backend, tmp_dir))
    if backend == "sqlite":
        return url.set(database=str(tmp_dir / f"{suffix}.sqlite3")).render_as_string(
            hide_password=False
        )
    url = url.set(database=f"{url.database}_{suffix}")
    admin = create_async_engine(_admin_url(url), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(_drop_statement(backend, str(url.database))))
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


def process_is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process: alive
        return False
    return False


def is_ours_to_drop(name: str) -> bool:
    """This run's databases (unless named explicitly), and those of a run on this host whose
    process is gone (killed before it could drop them)."""
    if not EXPLICIT_DATABASE and (name == TEST_DATABASE or name.startswith(f"{TEST_DATABASE}_")):
        return True
    match = RUN_NAME.match(name)
    return bool(match and match["host"] == HOST_TAG and process_is_gone(int(match["pid"])))


def server_urls() -> list[URL]:
    """The PostgreSQL and MariaDB servers this run may have made databases on, the chaos
    harness's included (it names its database after the run's)."""
    urls = [make_url(url_for(backend, Path())) for backend in ("postgresql", "mariadb")]
    urls.append(make_url(chaos_url()))
    servers: dict[tuple[str, str | None, int | None], URL] = {}
    for url in urls:
        servers.setdefault((url.get_backend_name(), url.host, url.port), _admin_url(url))
    return list(servers.values())


async def drop_run_databases() -> list[str]:
    """Drop the databases `is_ours_to_drop` picks on every server; the names dropped. A
    server that does not answer is passed over: what this run left there is a gone run's
    for the next run on this host to drop."""
    dropped: list[str] = []
    for admin_url in server_urls():
        backend = admin_url.get_backend_name()
        timeout = {"timeout": 5} if backend == "postgresql" else {"connect_timeout": 5}
        admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args=timeout)
        try:
            try:
                connection = await admin.connect()
            except Exception:  # noqa: BLE001 - a later run's clean-up gets it
                continue
            try:
                query = (
                    "SELECT datname FROM pg_database"
                    if backend == "postgresql"
                    else "SELECT schema_name FROM information_schema.schemata"
                )
                names = (await connection.scalars(text(query))).all()
                for name in filter(is_ours_to_drop, names):
                    await connection.execute(text(_drop_statement(backend, name)))
                    dropped.append(name)
            finally:
                await connection.close()
        finally:
            await admin.dispose()
    return dropped
