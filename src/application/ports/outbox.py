"""The outbox store: rows recorded, claimed, moved through their states, and read back."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

import attrs

from chat_outbox.domain import OutboxMessage, OutboxStatus, Transition
from chat_outbox.domain.envelope import Provenance


@attrs.frozen
class NewOutboxMessage:
    event_id: str
    biz_type: str
    topic: str
    message_key: str
    payload: str
    max_retry: int
    created_at: datetime
    traceparent: str | None = None


@attrs.frozen
class OutboxStats:
    counts: dict[OutboxStatus, int]
    oldest_pending_at: datetime | None
    oldest_published_at: datetime | None
    held: int = 0
    """Pending rows waiting behind a dead message of their conversation (invariant 6)."""

    @property
    def dead(self) -> int:
        return self.counts.get(OutboxStatus.DEAD, 0)


@attrs.frozen
class DeadSelector:
    """Which dead messages an operator means. Every criterion given must hold; none means
    all. The time range is on when a message died (its last update: a dead row is never
    written again while dead), from `died_since` included to `died_until` excluded."""

    outbox_id: int | None = None
    conversation_id: str | None = None
    outbox_ids: tuple[int, ...] = ()
    died_since: datetime | None = None
    died_until: datetime | None = None

    @property
    def ids(self) -> tuple[int, ...]:
        """Every id asked for; empty means any id."""
        return (*(() if self.outbox_id is None else (self.outbox_id,)), *self.outbox_ids)

    def matches(self, message: OutboxMessage) -> bool:
        """The selector as a predicate on a dead row (the SQL adapter's twin)."""
        return (
            (not self.ids or message.id in self.ids)
            and self.conversation_id in (None, message.message_key)
            and (self.died_since is None or message.updated_at >= self.died_since)
            and (self.died_until is None or message.updated_at < self.died_until)
        )

    def describe(self) -> dict[str, object]:
        """The criteria given, for audit lines."""
        criteria = {
            "ids": list(self.ids) or None,
            "conversation_id": self.conversation_id,
            "died_since": self.died_since and self.died_since.isoformat(),
            "died_until": self.died_until and self.died_until.isoformat(),
        }
        return {name: value for name, value in criteria.items() if value is not None} or {
            "all": True
        }


@attrs.frozen
class Shard:
    """The conversations one of `count` relays claims: those whose key hashes to `index`.
    A preference, not a guarantee: two relays with different views of who is alive may
    claim from one conversation for a moment, which the claim's row locks make safe."""

    index: int = 0
    count: int = 1


EVERY_CONVERSATION = Shard()


class OutboxRepository(Protocol):
    async def add(self, message: NewOutboxMessage) -> OutboxMessage:
        """Raises DuplicateEvent when a row with the message's event id exists."""
        ...

    async def by_event_id(self, event_id: str) -> OutboxMessage | None: ...

    async def claim_due(
        self, now: datetime, limit: int, lease: timedelta | None, shard: Shard = EVERY_CONVERSATION
    ) -> list[OutboxMessage]:
        """Take up to `limit` due pending rows in recording (id) order, each only when every
        earlier pending or dead row of its conversation is taken with it (invariant 6; see
        domain.holds_back_later_messages).
        With a lease, only conversation heads, one row per conversation: next_retry_at moves
        to now + lease, hiding them from other relays, and their conversations stay held.
        With no lease the rows are locked instead (FOR UPDATE SKIP LOCKED) and stay hidden
        only while the caller's unit of work is open, which must write their outcomes
        itself; a locked claim takes a conversation's run of due rows, so a conversation's
        later rows follow its earlier ones in the list and must be published after them.
        `shard` narrows a locked claim to a share of the conversations."""
        ...

    async def apply(self, transitions: Sequence[Transition]) -> int:
        """Write each transition guarded by its statuses; return how many rows changed."""
        ...

    async def get(self, outbox_id: int) -> OutboxMessage | None: ...

    async def first_of(self, conversation_id: str) -> OutboxMessage | None:
        """The conversation's first chat message still in the outbox (the lowest id)."""
        ...

    async def provenances(self, outbox_ids: Sequence[int]) -> dict[int, Provenance]:
        """The provenance of each of these rows that exists (a purged or never recorded id
        is absent), for the consumer to check records against."""
        ...

    async def dead(
        self, selector: DeadSelector, limit: int, after_id: int = 0
    ) -> list[OutboxMessage]:
        """Dead rows the selector matches with an id above `after_id` (a paging cursor),
        oldest (lowest id) first."""
        ...

    async def newest_id(self) -> int:
        """The highest id recorded so far, 0 when there is none."""
        ...

    async def held_behind_dead(self, conversation_ids: Sequence[str]) -> dict[str, int]:
        """For each conversation, how many pending rows wait behind an earlier dead one."""
        ...

    async def published_before(self, cutoff: datetime, limit: int) -> list[int]: ...

    async def purge_consumed(self, consumed_before: datetime, limit: int) -> int: ...

    async def stats(self) -> OutboxStats: ...
