"""Read-only views for the operator dashboard: activity rates, live relays, one message's
journey and a conversation's rows. Nothing here writes; requeueing goes through
operations.requeue_dead like the CLI's."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

import attrs

from chat_outbox.application.operate import operations
from chat_outbox.application.ports import Clock, OutboxStats, UnitOfWorkFactory
from chat_outbox.domain import HistoryEntry, OutboxMessage, OutboxStatus

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
class Step:
    """One point of a message's timeline; `since_previous` is the delay from the step
    before it, when both times are known."""

    label: str
    at: datetime | None
    since_previous: timedelta | None = None
    detail: str | None = None


@attrs.frozen
class Journey:
    message: OutboxMessage
    persisted: Persisted | None
    steps: tuple[Step, ...]


async def journey(
    uow_factory: UnitOfWorkFactory,
    insights: OutboxInsights,
    *,
    outbox_id: int | None = None,
    event_id: str | None = None,
) -> Journey | None:
    """The row found by its id or its event id, with its timeline; None when absent."""
    async with uow_factory() as uow:
        if outbox_id is not None:
            message = await uow.outbox.get(outbox_id)
        else:
            message = None if event_id is None else await uow.outbox.by_event_id(event_id)
    if message is None:
        return None
    persisted = await insights.persisted(message.event_id)
    return Journey(message, persisted, timeline(message, persisted))


def timeline(message: OutboxMessage, persisted: Persisted | None) -> tuple[Step, ...]:
    """What the row tells of its way: recorded, its failed attempts (only their count and
    the latest error are kept), published, dead, consumed and persisted."""
    steps = [Step("recorded", message.created_at)]
    if message.retry_count or message.last_error:
        attempts = "attempt" if message.retry_count == 1 else "attempts"
        detail = f"{message.retry_count} failed {attempts} of {message.max_retry} allowed"
        if message.retry_count == 0:
            detail = "retries reset by a requeue"
        if message.last_error:
            detail += f"; last error: {message.last_error}"
        # Only a dead row's updated_at is sure to be its last failure's time.
        failed_at = message.updated_at if message.status is OutboxStatus.DEAD else None
        label = "failed" if message.retry_count else "failed before a requeue"
        steps.append(Step(label, failed_at, detail=detail))
    if message.status is OutboxStatus.DEAD:
        steps.append(Step("dead", message.updated_at, detail="waits for an operator's requeue"))
    elif message.status is OutboxStatus.PENDING and message.retry_count:
        steps.append(Step("next attempt", message.next_retry_at, detail="scheduled"))
    if message.published_at is not None:
        steps.append(Step("published", message.published_at))
    if message.consumed_at is not None:
        steps.append(Step("consumed", message.consumed_at))
    if persisted is not None:
        steps.append(Step("in chat history", persisted.persisted_at))
    return tuple(_with_delays(steps))


def _with_delays(steps: Sequence[Step]) -> list[Step]:
    timed: list[Step] = []
    previous: datetime | None = None
    for step in steps:
        delay = None if step.at is None or previous is None else step.at - previous
        timed.append(attrs.evolve(step, since_previous=delay))
        previous = step.at if step.at is not None else previous
    return timed


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
