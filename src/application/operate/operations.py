"""Operator use cases: stats, history, requeue dead, sweep stale published, purge consumed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime

import attrs

from chat_outbox.application.ports import (
    Clock,
    DeadSelector,
    OutboxRepository,
    OutboxStats,
    UnitOfWorkFactory,
)
from chat_outbox.domain import HistoryEntry, OutboxMessage, Transition, requeued, swept

Progress = Callable[[int], None]
"""Told the running total after each batch, for long commands on a terminal."""


def _no_progress(done: int) -> None:
    """Nobody is watching."""


async def outbox_stats(uow_factory: UnitOfWorkFactory) -> OutboxStats:
    async with uow_factory() as uow:
        return await uow.outbox.stats()


async def read_history(
    uow_factory: UnitOfWorkFactory, conversation_id: str, limit: int = 1000, after: int = 0
) -> list[HistoryEntry]:
    async with uow_factory() as uow:
        return await uow.history.for_conversation(conversation_id, limit, after)


async def get_message(uow_factory: UnitOfWorkFactory, outbox_id: int) -> OutboxMessage | None:
    async with uow_factory() as uow:
        return await uow.outbox.get(outbox_id)


async def list_dead(
    uow_factory: UnitOfWorkFactory, selector: DeadSelector, limit: int = 1000
) -> list[OutboxMessage]:
    async with uow_factory() as uow:
        return await uow.outbox.dead(selector, limit)


async def held_behind_dead(
    uow_factory: UnitOfWorkFactory, conversation_ids: list[str]
) -> dict[str, int]:
    async with uow_factory() as uow:
        return await uow.outbox.held_behind_dead(conversation_ids)


async def requeue_dead(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    selector: DeadSelector,
    batch: int = 500,
    progress: Progress = _no_progress,
) -> int:
    """Dead rows back to pending with retries reset, oldest first, a batch per transaction.
    Order is safe whatever is selected: a claim takes a row only behind its conversation's
    earlier ones, so a requeued row waits behind any earlier row still pending or dead.
    Each row is requeued at most once, and only rows recorded before the requeue began:
    one that a relay kills again meanwhile waits for the next requeue, so this ends."""
    pages = _DeadPages(selector, batch)
    return await _move_in_batches(uow_factory, clock, pages.next, requeued, batch, progress)


@attrs.define
class _DeadPages:
    """Dead rows a page at a time by ascending id, behind a cursor rather than re-selecting
    from the lowest id (which would find the rows a relay just killed again), and no further
    than the newest id when paging began."""

    selector: DeadSelector
    size: int
    after_id: int = 0
    newest_id: int | None = None

    async def next(self, outbox: OutboxRepository) -> list[int]:
        if self.newest_id is None:
            self.newest_id = await outbox.newest_id()
        page = [
            message.id for message in await outbox.dead(self.selector, self.size, self.after_id)
        ]
        if page:
            self.after_id = page[-1]
        # A short page ends the requeue, so a page reaching past the bound is its last.
        return [outbox_id for outbox_id in page if outbox_id <= self.newest_id]


async def sweep_stale_published(
    uow_factory: UnitOfWorkFactory, clock: Clock, published_before: datetime, batch: int = 500
) -> int:
    """Published rows never consumed go back to pending, to be published again."""

    async def select(outbox: OutboxRepository) -> list[int]:
        return await outbox.published_before(published_before, batch)

    return await _move_in_batches(uow_factory, clock, select, swept, batch)


async def _move_in_batches(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    select: Callable[[OutboxRepository], Awaitable[list[int]]],
    transition: Callable[[int, datetime], Transition],
    batch: int,
    progress: Progress = _no_progress,
) -> int:
    total = 0
    while True:
        async with uow_factory() as uow:
            ids = await select(uow.outbox)
            now = clock.now()
            moved = await uow.outbox.apply([transition(outbox_id, now) for outbox_id in ids])
            await uow.commit()
        total += moved
        progress(total)
        if len(ids) < batch or moved == 0:
            return total


async def purge_consumed(
    uow_factory: UnitOfWorkFactory,
    consumed_before: datetime,
    batch: int = 1000,
    progress: Progress = _no_progress,
    stopping: asyncio.Event | None = None,
) -> int:
    """Delete in small transactions so no lock is held for long. When `stopping` is set, end
    after the batch in flight: a first purge of a big table must not hold up a shutdown."""
    total = 0
    while True:
        async with uow_factory() as uow:
            deleted = await uow.outbox.purge_consumed(consumed_before, batch)
            await uow.commit()
        total += deleted
        progress(total)
        if deleted < batch or (stopping is not None and stopping.is_set()):
            return total
