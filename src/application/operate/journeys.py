"""A message's journey for the operator dashboard: the row, its history entry, and its
timeline told from the row and its journal (domain.journal)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import attrs

from chat_outbox.application.operate.insights import OutboxInsights, Persisted
from chat_outbox.application.ports import UnitOfWorkFactory
from chat_outbox.domain import OutboxEvent, OutboxMessage, OutboxStatus
from chat_outbox.domain.journal import JournalEntry


@attrs.frozen
class Step:
    """One point of a message's timeline; `since_previous` is the delay from the step
    before it, when both times are known, and `error` a failed attempt's own error."""

    label: str
    at: datetime | None
    since_previous: timedelta | None = None
    detail: str | None = None
    error: str | None = None


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
    entries = await insights.journal(message.id)
    return Journey(message, persisted, timeline(message, persisted, entries))


def timeline(
    message: OutboxMessage, persisted: Persisted | None, journal: Sequence[JournalEntry] = ()
) -> tuple[Step, ...]:
    """The row's way: recorded, then its journal (each failed attempt with its own error,
    death, requeue and sweep) with its publishing and consumption in time order, and
    persisted. A row with no journal was recorded before there was one: its failures
    are told by their count and the latest error."""
    if not journal:
        return _summary_timeline(message, persisted)
    steps = [_journalled(message, entry) for entry in journal]
    if message.published_at is not None:
        steps.append(Step("published", message.published_at))
    if message.consumed_at is not None:
        steps.append(Step("consumed", message.consumed_at))
    steps.sort(key=lambda step: step.at or message.created_at)
    if message.status is OutboxStatus.PENDING:
        steps.append(Step("next attempt", message.next_retry_at, detail="scheduled"))
    elif message.status is OutboxStatus.DEAD and steps[-1].label == "dead":
        waits = f"{steps[-1].detail}; waits for an operator's requeue"
        steps[-1] = attrs.evolve(steps[-1], detail=waits)
    if persisted is not None:
        steps.append(Step("in chat history", persisted.persisted_at))
    return tuple(_with_delays([Step("recorded", message.created_at), *steps]))


JOURNAL_LABELS = {
    OutboxEvent.PUBLISH_FAILED: "failed",
    OutboxEvent.PUBLISH_FAILED_FATALLY: "dead",
    OutboxEvent.REQUEUED: "requeued",
    OutboxEvent.SWEPT: "swept",
    OutboxEvent.HANDLER_FAILED: "dead",
}


def _journalled(message: OutboxMessage, entry: JournalEntry) -> Step:
    """A journal line as a step; its retry count is the attempt number, except after a
    failure of the whole bus, which counts no attempt."""
    label = JOURNAL_LABELS.get(entry.event, entry.event.value)
    if entry.event is OutboxEvent.REQUEUED:
        detail = "by an operator; retries reset"
    elif entry.event is OutboxEvent.SWEPT:
        detail = "published but not consumed in time, or held behind a dead event of its key"
    elif entry.event is OutboxEvent.HANDLER_FAILED:
        detail = "the consumer's handler refused it"
    else:
        detail = f"attempt {entry.attempt} of {message.max_retry}"
    if entry.next_retry_at is not None and entry.event is OutboxEvent.PUBLISH_FAILED:
        wait = max((entry.next_retry_at - entry.at).total_seconds(), 0.0)
        detail += f"; next try {wait:.1f} s later"
    return Step(label, entry.at, detail=detail, error=entry.error)


def _summary_timeline(message: OutboxMessage, persisted: Persisted | None) -> tuple[Step, ...]:
    """A row recorded before the journal: only the count of its failed attempts and the
    latest error are kept."""
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
