"""Read-only views for the operator dashboard: activity rates, live relays, dead letters
and a conversation's rows (a message's journey is in journeys.py). Nothing here writes;
requeueing goes through operations.requeue_dead like the CLI's."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

import attrs

from chat_outbox.application.operate import operations
from chat_outbox.application.ports import Clock, OutboxStats, UnitOfWorkFactory
from chat_outbox.domain import HistoryEntry, OutboxMessage, OutboxStatus
from chat_outbox.domain.journal import JournalEntry

ACTIVITY_WINDOW = timedelta(hours=1)
ACTIVITY_STEP = timedelta(minutes=1)


@attrs.frozen
class Activity:
    """Rows recorded, published and consumed in each step from `start` on (per minute
    over the last hour, by the rows' created_at, published_at and consumed_at)."""

    start: datetime
    step: timedelta
    recorded: tuple[int, ...]
    published: tuple[int, ...]
    consumed: tuple[int, ...]


@attrs.frozen
class RelayMember:
    member: str
    alive_until: datetime


@attrs.frozen
class LiveRelay:
    """A relay in the roster, and its share: the conversations hashing to `shard` of `of`."""

    member: str
    alive_until: datetime
    shard: int
    of: int


@attrs.frozen
class DeadQuery:
    """Which dead rows to list; every criterion given must hold. `died_*` bound the last
    update (a dead row is not written again while dead)."""

    conversation_id: str | None = None
    error_contains: str | None = None
    died_since: datetime | None = None
    died_before: datetime | None = None


@attrs.frozen
class Persisted:
    """A history entry and when the consumer wrote it."""

    entry: HistoryEntry
    persisted_at: datetime


class OutboxInsights(Protocol):
    """Reads the operator views need beyond the OutboxRepository's."""

    async def counts_by_type(self) -> dict[str, dict[OutboxStatus, int]]: ...

    async def activity(self, start: datetime, step: timedelta, steps: int) -> Activity: ...

    async def relay_members(self, now: datetime) -> list[RelayMember]:
        """Members alive at `now`, sorted by id (the order the relays shard by)."""
        ...

    async def persisted(self, event_id: str) -> Persisted | None: ...

    async def journal(self, outbox_id: int) -> list[JournalEntry]:
        """The row's journal (domain.journal), oldest line first."""
        ...

    async def messages(self, outbox_ids: Sequence[int]) -> list[OutboxMessage]:
        """The rows with these ids that exist, by id."""
        ...

    async def conversation_rows(self, conversation_id: str, limit: int) -> list[OutboxMessage]:
        """The conversation's outbox rows, in recording (id) order."""
        ...

    async def dead(self, query: DeadQuery, limit: int) -> list[OutboxMessage]:
        """Dead rows matching `query`, oldest (lowest id) first."""
        ...


@attrs.frozen
class Overview:
    stats: OutboxStats
    by_type: dict[str, dict[OutboxStatus, int]]
    activity: Activity
    relays: list[LiveRelay]
    now: datetime


async def overview(
    uow_factory: UnitOfWorkFactory, insights: OutboxInsights, clock: Clock
) -> Overview:
    now = clock.now()
    stats = await operations.outbox_stats(uow_factory)
    start = _minute(now) + ACTIVITY_STEP - ACTIVITY_WINDOW
    steps = int(ACTIVITY_WINDOW / ACTIVITY_STEP)
    members = await insights.relay_members(now)
    return Overview(
        stats=stats,
        by_type=await insights.counts_by_type(),
        activity=await insights.activity(start, ACTIVITY_STEP, steps),
        relays=[
            LiveRelay(m.member, m.alive_until, index, len(members))
            for index, m in enumerate(members)
        ],
        now=now,
    )


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


@attrs.frozen
class DeadLetter:
    message: OutboxMessage
    held_behind: int
    """Pending rows of its conversation waiting behind it (invariant 6)."""


async def dead_letters(
    uow_factory: UnitOfWorkFactory, insights: OutboxInsights, query: DeadQuery, limit: int
) -> list[DeadLetter]:
    rows = await insights.dead(query, limit)
    held = await operations.held_behind_dead(uow_factory, sorted({m.message_key for m in rows}))
    return [DeadLetter(message, held.get(message.message_key, 0)) for message in rows]


@attrs.frozen
class ConversationView:
    history: list[HistoryEntry]
    rows: list[OutboxMessage]


async def conversation(
    uow_factory: UnitOfWorkFactory, insights: OutboxInsights, conversation_id: str, limit: int
) -> ConversationView:
    history = await operations.read_history(uow_factory, conversation_id, limit)
    rows = await insights.conversation_rows(conversation_id, limit)
    return ConversationView(history, rows)
