"""The outbox journal: a line for each transition an operator reads a row's journey by (a
failed attempt and its error, a death, a requeue, a sweep), written beside the row."""

from __future__ import annotations

from datetime import datetime

import attrs

from chat_outbox.domain.outbox import OutboxEvent, OutboxStatus, Transition


@attrs.frozen
class JournalEntry:
    """One journalled transition of an outbox row."""

    outbox_id: int
    event: OutboxEvent
    attempt: int
    """The row's retry count after the transition."""
    error: str | None
    at: datetime
    next_retry_at: datetime | None
    """When the row is due again, for a transition that leaves it pending."""


def is_journalled(transition: Transition) -> bool:
    """A transition that reschedules its row or records an error. Acks and consumes do
    neither, so the relay's and the consumer's usual path writes no journal."""
    return transition.next_retry_at is not None or transition.last_error is not None


def journal_entry(transition: Transition, retry_count: int) -> JournalEntry:
    """The line for a journalled transition, given the row's retry count after it."""
    pending = transition.to_status is OutboxStatus.PENDING
    return JournalEntry(
        outbox_id=transition.outbox_id,
        event=transition.event,
        attempt=retry_count,
        error=transition.last_error,
        at=transition.at,
        next_retry_at=transition.next_retry_at if pending else None,
    )
