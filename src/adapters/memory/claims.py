"""The claim strategies over the in-memory store: leased heads, and locked runs (the fake
models no row locks, so a locked claim is simply its unit of work held open)."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

import attrs

from chat_outbox.adapters.memory.store import InMemoryUnitOfWork
from chat_outbox.application.ports import (
    EVERY_CONVERSATION,
    ClaimedBatch,
    OutboxClaims,
    Shard,
)
from chat_outbox.application.relay.sharing import RelayShares
from chat_outbox.domain import (
    OutboxMessage,
    OutboxStatus,
    Transition,
    holds_back_later_messages,
)

UnitsOfWork = Callable[[], InMemoryUnitOfWork]


@attrs.define
class InMemoryLeasedClaims(OutboxClaims):
    """Heads only, leased until now + lease; outcomes go in their own unit of work."""

    uow: UnitsOfWork
    lease: timedelta

    @asynccontextmanager
    async def claim(self, now: datetime, limit: int) -> AsyncIterator[ClaimedBatch]:
        async with self.uow() as uow:
            claimed = due_rows(uow.outbox.rows.values(), now, limit, runs=False)
            for row in claimed:
                row.next_retry_at = now + self.lease
            await uow.commit()
        yield _LeasedBatch(self.uow, [attrs.evolve(row) for row in claimed])

    async def stop(self) -> None:
        """Nothing is claimed ahead."""


@attrs.define
class InMemoryLockedClaims(OutboxClaims):
    """Runs of due rows, in a unit of work held open until the settle; `shares` narrows
    them to this relay's share of the conversations."""

    uow: UnitsOfWork
    shares: RelayShares | None = None

    @asynccontextmanager
    async def claim(self, now: datetime, limit: int) -> AsyncIterator[ClaimedBatch]:
        shard = await self.shares.shard() if self.shares else EVERY_CONVERSATION
        async with self.uow() as uow:
            claimed = due_rows(uow.outbox.rows.values(), now, limit, runs=True, shard=shard)
            yield _LockedBatch(uow, [attrs.evolve(row) for row in claimed])

    async def stop(self) -> None:
        if self.shares is not None:
            await self.shares.leave()


@attrs.frozen
class _LeasedBatch(ClaimedBatch):
    uow: UnitsOfWork
    messages: Sequence[OutboxMessage]

    async def settle(self, transitions: Sequence[Transition]) -> int:
        async with self.uow() as uow:
            return await _write(uow, transitions)


@attrs.frozen
class _LockedBatch(ClaimedBatch):
    uow: InMemoryUnitOfWork
    """The claim's own unit of work, still open."""
    messages: Sequence[OutboxMessage]

    async def settle(self, transitions: Sequence[Transition]) -> int:
        return await _write(self.uow, transitions)


async def _write(uow: InMemoryUnitOfWork, transitions: Sequence[Transition]) -> int:
    changed = await uow.outbox.apply(transitions)
    await uow.commit()
    return changed


def due_rows(
    rows: Iterable[OutboxMessage],
    now: datetime,
    limit: int,
    *,
    runs: bool,
    shard: Shard = EVERY_CONVERSATION,
) -> list[OutboxMessage]:
    """Up to `limit` due pending rows in id order, each only behind every earlier holding
    row of its conversation: the heads, or with `runs` each conversation's due run."""
    closed: set[str] = set()  # conversations whose later rows must wait
    due: list[OutboxMessage] = []
    for row in sorted(rows, key=lambda r: r.id):
        if row.message_key in closed:
            continue
        if zlib.crc32(row.message_key.encode()) % shard.count != shard.index:
            continue
        if not holds_back_later_messages(row):
            continue
        if len(due) == limit:
            break
        if row.status is OutboxStatus.PENDING and row.next_retry_at <= now:
            due.append(row)
            if runs:
                continue
        closed.add(row.message_key)
    return due
