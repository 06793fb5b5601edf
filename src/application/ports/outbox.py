"""The outbox store: rows recorded, moved through their states, and read back (claims are
ports.claims)."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol

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

    def recorded_as(self, outbox_id: int) -> OutboxMessage:
        """The row as stored under `outbox_id`: pending, due at once, no attempt yet."""
        return OutboxMessage(
            id=outbox_id,
            event_id=self.event_id,
            biz_type=self.biz_type,
            topic=self.topic,
            message_key=self.message_key,
            payload=self.payload,
            status=OutboxStatus.PENDING,
            created_at=self.created_at,
            updated_at=self.created_at,
            next_retry_at=self.created_at,
            retry_count=0,
            max_retry=self.max_retry,
            traceparent=self.traceparent,
        )


@attrs.frozen
class OutboxStats:
    counts: dict[OutboxStatus, int]
    oldest_pending_at: datetime | None
    oldest_published_at: datetime | None
    held: int = 0
    """Pending rows waiting behind a dead message of their conversation (invariant 6)."""
    by_type: Mapping[str, Mapping[OutboxStatus, int]] = attrs.field(factory=dict)
    """The counts of each event type (chat messages' included) that has rows."""

    @property
    def dead(self) -> int:
        return self.counts.get(OutboxStatus.DEAD, 0)


@attrs.frozen
class Criterion:
    """One comparison of a row's field (an OutboxMessage attribute and its column) with a
    value."""

    field: str
    test: Literal["in", "==", ">=", "<"]
    value: Any


_TESTS: dict[str, Callable[[Any, Any], bool]] = {
    "in": lambda field, values: field in values,
    "==": operator.eq,
    ">=": operator.ge,
    "<": operator.lt,
}


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
    event_type: str | None = None

    @property
    def ids(self) -> tuple[int, ...]:
        """Every id asked for; empty means any id."""
        return (*(() if self.outbox_id is None else (self.outbox_id,)), *self.outbox_ids)

    def criteria(self) -> list[Criterion]:
        """The selector as comparisons on a dead row's fields, which are also the outbox
        table's columns: the fakes test rows with them, the SQL adapter builds its WHERE."""
        given: list[Criterion] = []
        if self.ids:
            given.append(Criterion("id", "in", self.ids))
        if self.conversation_id is not None:
            given.append(Criterion("message_key", "==", self.conversation_id))
        if self.event_type is not None:
            given.append(Criterion("biz_type", "==", self.event_type))
        if self.died_since is not None:
            given.append(Criterion("updated_at", ">=", self.died_since))
        if self.died_until is not None:
            given.append(Criterion("updated_at", "<", self.died_until))
        return given

    def matches(self, message: OutboxMessage) -> bool:
        """Whether a dead row meets every criterion."""
        return all(_TESTS[c.test](getattr(message, c.field), c.value) for c in self.criteria())

    def describe(self) -> dict[str, object]:
        """The criteria given, for audit lines."""
        criteria = {
            "ids": list(self.ids) or None,
            "conversation_id": self.conversation_id,
            "died_since": self.died_since and self.died_since.isoformat(),
            "died_until": self.died_until and self.died_until.isoformat(),
            "event_type": self.event_type,
        }
        return {name: value for name, value in criteria.items() if value is not None} or {
            "all": True
        }


class OutboxRepository(Protocol):
    async def add(self, message: NewOutboxMessage) -> OutboxMessage:
        """Raises DuplicateEvent when a row with the message's event id exists."""
        ...

    async def by_event_id(self, event_id: str) -> OutboxMessage | None: ...

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
