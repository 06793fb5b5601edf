"""The SQL unit of work: one connection, one transaction, rolled back unless committed."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chat_outbox.adapters.sql.engine import is_transient, unavailable
from chat_outbox.adapters.sql.history import SqlChatHistoryRepository
from chat_outbox.adapters.sql.outbox import SqlOutboxRepository
from chat_outbox.adapters.sql.owners import SqlConversationOwners
from chat_outbox.adapters.sql.roster import SqlRelayRoster
from chat_outbox.application.ports import UnitOfWork


class SqlUnitOfWork(UnitOfWork):
    """`connection` is public on purpose: an application's own business write joins the
    outbox row's transaction through it."""

    outbox: SqlOutboxRepository
    history: SqlChatHistoryRepository
    relays: SqlRelayRoster
    owners: SqlConversationOwners
    connection: AsyncConnection

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._committed = False

    async def __aenter__(self) -> Self:
        try:
            self.connection = await self._engine.connect()
            await self.connection.begin()
        except Exception as error:
            if is_transient(error):
                raise unavailable(error) from error
            raise
        self.outbox = SqlOutboxRepository(self.connection)
        self.history = SqlChatHistoryRepository(self.connection)
        self.relays = SqlRelayRoster(self.connection)
        self.owners = SqlConversationOwners(self.connection)
        self._committed = False
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if not self._committed and self.connection.in_transaction():
                await self.connection.rollback()
            await self.connection.close()
        except Exception as cleanup_error:
            if exc is None:
                raise (
                    unavailable(cleanup_error) if is_transient(cleanup_error) else cleanup_error
                ) from cleanup_error
        if exc is not None and is_transient(exc):
            raise unavailable(exc) from exc

    async def commit(self) -> None:
        await self.connection.commit()
        self._committed = True


class SqlUnitOfWorkFactory:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    def __call__(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine)
