"""The migrated schema against the code's metadata, and a database that cannot be reached."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.sql import SqlUnitOfWorkFactory, create_engine
from chat_outbox.adapters.sql.tables import metadata
from chat_outbox.application.errors import StoreUnavailable

pytestmark = pytest.mark.integration

PASSWORD = "s3cret"
UNREACHABLE = {
    "postgresql": f"postgresql+asyncpg://postgres:{PASSWORD}@127.0.0.1:1/x",
    "mariadb": f"mysql+asyncmy://root:{PASSWORD}@127.0.0.1:1/x?charset=utf8mb4",
}


def ours(name: str | None, type_: str, _parent: Any) -> bool:
    """Compare only our tables: other tests' business tables share the database."""
    return type_ != "table" or name in metadata.tables


def built_in(dialect: str) -> Any:
    """Leave out the indexes tables.py builds only in other databases (partial indexes)."""

    def include(item: Any, _name: Any, type_: str, _reflected: bool, _other: Any) -> bool:
        return type_ != "index" or dialect in item.info.get("dialects", (dialect,))

    return include


def differences(connection: Connection) -> list[Any]:
    opts = {
        "compare_type": True,
        "include_name": ours,
        "include_object": built_in(connection.dialect.name),
    }
    context = MigrationContext.configure(connection, opts=opts)
    return list(compare_metadata(context, metadata))


async def enter(uow: SqlUnitOfWorkFactory) -> None:
    async with uow():
        pass


async def test_the_migrated_schema_matches_the_table_metadata(engine: AsyncEngine) -> None:
    """Autogenerate finds nothing to change between the Alembic migrations and tables.py."""
    async with engine.connect() as connection:
        assert await connection.run_sync(differences) == []


@pytest.mark.parametrize("url", UNREACHABLE.values(), ids=UNREACHABLE.keys())
async def test_a_database_that_is_down_raises_store_unavailable_without_the_password(
    url: str,
) -> None:
    """Entering a unit of work on a refused port gives a one-line StoreUnavailable, no secret."""
    engine = create_engine(url)
    try:
        with pytest.raises(StoreUnavailable) as caught:
            await enter(SqlUnitOfWorkFactory(engine))
    finally:
        await engine.dispose()
    message = str(caught.value)
    assert message.startswith("database unavailable: ")
    assert "\n" not in message
    assert PASSWORD not in message
