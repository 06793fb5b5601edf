"""The ports the use cases need, named in the domain's words.

Adapters implement these Protocols; mypy checks each adapter where a container binds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Protocol, Self

import attrs

from chat_outbox.domain import HistoryEntry, OutboxMessage, OutboxStatus, PublishFailure, Transition
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


class UnitOfWork(Protocol):
    """One transaction. Leaving the block without commit() rolls everything back."""

    outbox: OutboxRepository
    history: ChatHistoryRepository
    relays: RelayRoster
    owners: ConversationOwners

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...


@attrs.frozen
class OutgoingRecord:
    topic: str
    key: str
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


PublishResult = PublishFailure | None
"""None means the bus acknowledged the record."""


class MessageBus(Protocol):
    keeps_key_order: bool = False
    """True when a record that fails stops its key for the rest of the call: no later
    record with the same key and topic is delivered (each reports a failure). The relay
    then publishes a whole batch in one call rather than one call per position in a
    conversation (waves)."""

    async def publish(self, records: Sequence[OutgoingRecord]) -> list[PublishResult]:
        """Publish a batch; return one result per record, in order. Never raises for a
        record's own failure: that is what the result is for."""
        ...


@attrs.frozen
class IncomingRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp: datetime | None = None
    """When the bus took the record (Kafka's CreateTime), if the bus says."""

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value.decode("utf-8", "replace")
        return None


class MessageSource(Protocol):
    async def fetch(self, max_records: int, timeout: float) -> list[IncomingRecord]: ...

    async def acknowledge(self, records: Sequence[IncomingRecord]) -> None:
        """Mark records done; called only after the handler's transaction committed."""
        ...

    async def dead_letter(self, record: IncomingRecord, reason: str) -> None:
        """Park a record that can never be handled, with the reason; raises if it could
        not be parked, so the caller does not acknowledge it."""
        ...


class Wakeups(Protocol):
    """Tells the relay that rows may have become due, so it need not wait for its poll."""

    async def wait(self, timeout: float) -> bool:
        """Return True when woken, False when `timeout` seconds passed without a wake-up."""
        ...


class Clock(Protocol):
    def now(self) -> datetime: ...


class EventIds(Protocol):
    def __call__(self) -> str: ...
