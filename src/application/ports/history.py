"""Chat history: what the consumer writes and the API reads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

import attrs

from chat_outbox.domain import Envelope, HistoryEntry


class ChatHistoryRepository(Protocol):
    async def add_many(self, entries: Sequence[HistoryEntry]) -> int:
        """Insert entries whose event id is new; return how many were inserted."""
        ...

    async def by_event_ids(self, event_ids: Sequence[str]) -> dict[str, HistoryEntry]:
        """The stored entries among these event ids, to tell a redelivery (same content)
        from a forged or corrupted duplicate (same event id, other content)."""
        ...

    async def for_conversation(
        self, conversation_id: str, limit: int, after_outbox_id: int = 0
    ) -> list[HistoryEntry]:
        """The conversation's entries in recording order."""
        ...


@attrs.frozen
class Persisted:
    """What became of a batch a HistoryWriter was handed."""

    inserted: int
    conflicting: frozenset[str] = frozenset()
    """Event ids already in history with other content: left as stored, not consumed."""
    forged: Mapping[str, str] = attrs.field(factory=dict)
    """Event ids whose outbox row does not vouch for them, each with the reason: nothing
    written, no row touched."""


class HistoryWriter(Protocol):
    """The consumer's write: a delivered batch into chat history, its outbox rows consumed."""

    async def persist(self, envelopes: Sequence[Envelope], at: datetime) -> Persisted:
        """In transactions of its own, insert the history entry of each envelope whose event
        id is new and whose outbox row vouches for it (Provenance.mismatch is None), and
        mark that row consumed at `at` (domain.consumed), each entry's insert and mark in
        one transaction. An envelope its row does not vouch for is forged or stale, unless
        its event id is in history with the same content: a redelivery, harmless even
        after the row was purged. An event id stored with other content is conflicting,
        never silently kept. Rows are written in `in_lock_order`."""
        ...


def in_lock_order(envelopes: Sequence[Envelope]) -> list[Envelope]:
    """One envelope per event id, in outbox id order. Every consumer writes history rows and
    outbox rows in that one order (a rebalance or a redelivery can hand two of them the same
    records), so concurrent consumers wait on each other instead of deadlocking."""
    unique = {envelope.event_id: envelope for envelope in envelopes}
    return sorted(unique.values(), key=_outbox_id)


def _outbox_id(envelope: Envelope) -> int:
    return envelope.outbox_id
