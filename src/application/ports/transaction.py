"""One transaction over the stores."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self

from chat_outbox.application.ports.coordination import ConversationOwners, RelayRoster
from chat_outbox.application.ports.history import ChatHistoryRepository
from chat_outbox.application.ports.outbox import OutboxRepository


class UnitOfWork(Protocol):
    """One transaction. Leaving the block without commit() rolls everything back."""

    outbox: OutboxRepository
    history: ChatHistoryRepository
    relays: RelayRoster
    owners: ConversationOwners

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...
