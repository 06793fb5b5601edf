"""Who is alive among the relays, and who owns each conversation."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class RelayRoster(Protocol):
    """Which relays are alive."""

    async def beat(self, member: str, now: datetime, alive_until: datetime) -> list[str]:
        """Record that `member` is alive until `alive_until`; return the members alive at
        `now`, itself included, sorted."""
        ...

    async def leave(self, member: str) -> None: ...


class ConversationOwners(Protocol):
    """Who owns each conversation: the user it was first claimed for. An owner never
    changes once recorded."""

    async def claim(self, conversation_id: str, user_id: int, at: datetime) -> int:
        """Make `user_id` the owner unless the conversation has one (insert-if-absent, race
        free: a concurrent claim waits for this unit of work), and return the owner."""
        ...

    async def owner_of(self, conversation_id: str) -> int | None:
        """The owner, or None when the conversation was never claimed."""
        ...
