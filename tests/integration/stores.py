"""The store contract's backends (the in-memory fake and the three databases, each empty at
the start of a test) and the helpers the contract suite drives them through."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.clock import ManualClock, uuid4_event_id
from chat_outbox.adapters.memory import InMemoryStore, InMemoryUnitOfWork
from chat_outbox.adapters.memory.claims import InMemoryLeasedClaims, InMemoryLockedClaims
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.adapters.sql.claims import LeasedClaims, LockedClaims
from chat_outbox.application.ports import NewOutboxMessage, OutboxClaims, UnitOfWork
from chat_outbox.domain import (
    BIZ_TYPE_CHAT_HISTORY,
    OutboxMessage,
    OutboxStatus,
    PublishFailure,
    RetryPolicy,
    Transition,
)
from tests.integration.databases import (
    BACKENDS,
    fresh_database_url,
    fresh_migrated_engine,
    truncate,
)

CONTRACT_BACKENDS = ("memory", *BACKENDS)
T0 = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
LEASE = timedelta(seconds=60)
RETRY = RetryPolicy(rand=lambda: 0.5)
MAX_RETRY = 3


@attrs.frozen
class Store:
    """One backend: `open()` starts a unit of work on it."""

    backend: str
    open: Callable[[], UnitOfWork]
    claims: Callable[[timedelta | None], OutboxClaims]
    """The claim strategy a relay would use: leased for a lease, row locks for None."""

    @property
    def claim_modes(self) -> tuple[timedelta | None, ...]:
        """A lease everywhere; row locks (None) where the backend claims by them. The fake
        models a locked claim's order, though not its locks, so it is held to it too."""
        return (LEASE,) if self.backend == "sqlite" else (LEASE, None)


async def contract_engine(backend: str, database_dir: Path) -> AsyncEngine:
    """A migrated database of the suite's own, apart from the run's one (which other
    modules truncate under their own tests)."""
    url = await fresh_database_url(backend, database_dir, "store_contract")
    return await fresh_migrated_engine(url)


async def empty_store(backend: str, engine: AsyncEngine | None) -> Store:
    """A fresh fake when `engine` is None, else the engine's database emptied."""
    if engine is None:
        memory = InMemoryStore()

        def memory_unit() -> InMemoryUnitOfWork:
            return InMemoryUnitOfWork(memory)

        def memory_claims(lease: timedelta | None) -> OutboxClaims:
            if lease is None:
                return InMemoryLockedClaims(memory_unit)
            return InMemoryLeasedClaims(memory_unit, lease)

        return Store(backend, memory_unit, memory_claims)
    await truncate(engine)
    sql_unit = SqlUnitOfWorkFactory(engine)

    def sql_claims(lease: timedelta | None) -> OutboxClaims:
        if lease is None:
            return LockedClaims(sql_unit)
        return LeasedClaims(sql_unit, ManualClock(T0), lease)

    return Store(backend, sql_unit, sql_claims)


def new_message(
    conversation: str = "c-1",
    at: datetime = T0,
    *,
    event_id: str | None = None,
    biz_type: str = BIZ_TYPE_CHAT_HISTORY,
) -> NewOutboxMessage:
    chat = {"user_id": 7, "conversation_id": conversation, "role": "user", "message": "héllo 🤖"}
    return NewOutboxMessage(
        event_id=event_id or uuid4_event_id(),
        biz_type=biz_type,
        topic="chat.messages",
        message_key=conversation,
        payload=json.dumps(chat, ensure_ascii=False),
        max_retry=MAX_RETRY,
        created_at=at,
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )


async def add(store: Store, message: NewOutboxMessage) -> OutboxMessage:
    async with store.open() as unit:
        added = await unit.outbox.add(message)
        await unit.commit()
    return added


async def get(store: Store, outbox_id: int) -> OutboxMessage:
    async with store.open() as unit:
        found = await unit.outbox.get(outbox_id)
    assert found is not None, f"no outbox row {outbox_id}"
    return found


async def apply(store: Store, transitions: Sequence[Transition]) -> int:
    async with store.open() as unit:
        changed = await unit.outbox.apply(transitions)
        await unit.commit()
    return changed


def to_status(message: OutboxMessage, status: OutboxStatus, at: datetime) -> list[Transition]:
    """The domain's transitions that take a pending message to `status` at `at` (a dead one
    after one retryable failure), applied to `message` as they are made."""
    made: list[Transition | None] = []
    if status is OutboxStatus.PUBLISHED:
        made = [message.mark_published(at)]
    elif status is OutboxStatus.CONSUMED:
        made = [message.mark_consumed(at)]
    elif status is OutboxStatus.DEAD:
        made = [
            message.record_publish_failure(PublishFailure("flaky"), at, RETRY),
            message.record_publish_failure(PublishFailure.fatal("refused"), at, RETRY),
        ]
    return [transition for transition in made if transition is not None]


async def seed(
    store: Store, status: OutboxStatus, conversation: str = "c-1", at: datetime = T0
) -> OutboxMessage:
    """A row recorded at `at` and moved to `status` by the domain at `at`, as stored."""
    message = await add(store, new_message(conversation, at))
    for transition in to_status(message, status, at):
        assert await apply(store, [transition]) == 1
    return await get(store, message.id)


async def claim(
    store: Store, now: datetime, limit: int, lease: timedelta | None
) -> list[OutboxMessage]:
    """The suite's one call of the claim API: the rows a relay would publish, in order."""
    async with store.claims(lease).claim(now, limit) as batch:
        return list(batch.messages)
