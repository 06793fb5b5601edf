"""Chat history: what the consumer writes and the API reads."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from chat_outbox.domain import HistoryEntry


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


class FreshHistory(Protocol):
    """The consumer's usual batch, whose event ids are all new to history, in one write."""

    async def add_consumed(self, entries: Sequence[HistoryEntry], at: datetime) -> int:
        """In one transaction of its own, insert the entries whose event id is new and whose
        outbox row vouches for them (Provenance.mismatch is None, the type being chat
        history), and mark the outbox row of each one inserted consumed at `at` (guarded as
        domain.consumed is); return how many were inserted. Any other entry is left alone,
        and so is its outbox row: the caller tells a redelivery, a conflict and a forgery
        apart."""
        ...
