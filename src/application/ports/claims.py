"""Claims: how a relay takes due outbox rows for itself, and hands back their outcomes."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

import attrs

from chat_outbox.domain import OutboxMessage, Transition


class ClaimedBatch(Protocol):
    """Rows one relay has claimed. Until they are settled, or the claim's block is left,
    no other relay claims them. A conversation's rows come in recording (id) order, and
    one is included only when every earlier pending or dead row of its conversation is
    included before it (invariant 6; see domain.holds_back_later_messages), so publishing
    them in list order keeps each conversation's order. Empty when nothing is due."""

    @property
    def messages(self) -> Sequence[OutboxMessage]: ...

    async def settle(self, transitions: Sequence[Transition]) -> int:
        """Write the outcomes of the claimed rows (each guarded by its statuses); return
        how many rows changed. A row with no transition stays pending and due, behind its
        conversation. Called at most once."""
        ...


class OutboxClaims(Protocol):
    """A claim strategy (leased rows, or row locks held through the publish), chosen by
    the container; the relay uses it the same way whichever it is."""

    def claim(self, now: datetime, limit: int) -> AbstractAsyncContextManager[ClaimedBatch]:
        """Claim up to `limit` rows due at `now`. Leaving the block without settling keeps
        nothing from other relays for longer than the strategy promises: a row lock ends
        with the block, a lease when it runs out."""
        ...

    async def stop(self) -> None:
        """The relay stops: hand back what this relay still holds (rows claimed ahead, its
        share of the conversations), so other relays take them at once."""
        ...


@attrs.frozen
class Shard:
    """The conversations one of `count` relays claims: those whose key hashes to `index`.
    A preference, not a guarantee: two relays with different views of who is alive may
    claim from one conversation for a moment, which the claim's row locks make safe."""

    index: int = 0
    count: int = 1


EVERY_CONVERSATION = Shard()
