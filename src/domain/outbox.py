"""The outbox message and its state machine (ARCHITECTURE.md, one table)."""

from __future__ import annotations

import enum
import operator
from collections.abc import Callable, Mapping
from datetime import datetime

import attrs

from chat_outbox.domain.errors import IllegalTransition
from chat_outbox.domain.retry import PublishFailure, RetryPolicy

BIZ_TYPE_CHAT_HISTORY = "chat_history_persist"
DEFAULT_MAX_RETRY = 20


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    PUBLISHED = "published"
    CONSUMED = "consumed"
    DEAD = "dead"


class OutboxEvent(enum.StrEnum):
    PUBLISH_ACKED = "publish_acked"
    PUBLISH_FAILED = "publish_failed"
    PUBLISH_FAILED_FATALLY = "publish_failed_fatally"
    CONSUMED = "consumed"
    REQUEUED = "requeued"
    SWEPT = "swept"
    HANDLER_FAILED = "handler_failed"
    """A consumer's handler refused the event for good: it is dead-lettered, its row dead."""


class _Outcome(enum.Enum):
    NO_OP = "no-op"
    REFUSED = "refused"


_S, _E, _NO_OP, _REFUSED = OutboxStatus, OutboxEvent, _Outcome.NO_OP, _Outcome.REFUSED

# The state table. A retryable failure may still end in DEAD when retries run out;
# the entity decides that, the table only says PENDING may take the event.
TABLE: dict[OutboxStatus, dict[OutboxEvent, OutboxStatus | _Outcome]] = {
    _S.PENDING: {
        _E.PUBLISH_ACKED: _S.PUBLISHED,
        _E.PUBLISH_FAILED: _S.PENDING,
        _E.PUBLISH_FAILED_FATALLY: _S.DEAD,
        _E.CONSUMED: _S.CONSUMED,
        _E.REQUEUED: _REFUSED,
        _E.SWEPT: _REFUSED,
        _E.HANDLER_FAILED: _S.DEAD,
    },
    _S.PUBLISHED: {
        _E.PUBLISH_ACKED: _NO_OP,
        _E.PUBLISH_FAILED: _NO_OP,
        _E.PUBLISH_FAILED_FATALLY: _NO_OP,
        _E.CONSUMED: _S.CONSUMED,
        _E.REQUEUED: _REFUSED,
        _E.SWEPT: _S.PENDING,
        _E.HANDLER_FAILED: _S.DEAD,
    },
    _S.CONSUMED: {
        _E.PUBLISH_ACKED: _NO_OP,
        _E.PUBLISH_FAILED: _NO_OP,
        _E.PUBLISH_FAILED_FATALLY: _NO_OP,
        _E.CONSUMED: _NO_OP,
        _E.REQUEUED: _REFUSED,
        _E.SWEPT: _REFUSED,
        _E.HANDLER_FAILED: _NO_OP,
    },
    _S.DEAD: {
        _E.PUBLISH_ACKED: _NO_OP,
        _E.PUBLISH_FAILED: _NO_OP,
        _E.PUBLISH_FAILED_FATALLY: _NO_OP,
        _E.CONSUMED: _S.CONSUMED,
        _E.REQUEUED: _S.PENDING,
        _E.SWEPT: _REFUSED,
        _E.HANDLER_FAILED: _NO_OP,
    },
}


def statuses_changed_by(event: OutboxEvent) -> frozenset[OutboxStatus]:
    """The statuses in which `event` changes a row: the guard of every SQL UPDATE."""
    return frozenset(s for s, row in TABLE.items() if isinstance(row[event], OutboxStatus))


@attrs.frozen
class Transition:
    """One state change, decided by the domain and applied by a guarded write."""

    outbox_id: int
    event: OutboxEvent
    to_status: OutboxStatus
    at: datetime
    retry_count: int | None = None
    next_retry_at: datetime | None = None
    last_error: str | None = None

    @property
    def guard(self) -> frozenset[OutboxStatus]:
        """The statuses the row may move from: in any other, the transition changes nothing."""
        return statuses_changed_by(self.event)

    def changes(self) -> Mapping[str, object]:
        """Each field the transition sets on its row, with its new value: the one description
        of a transition's effects, which the entity, the SQL UPDATEs and the fakes apply."""
        changes: dict[str, object] = {"status": self.to_status, "updated_at": self.at}
        if self.retry_count is not None:
            changes["retry_count"] = self.retry_count
        if self.next_retry_at is not None:
            changes["next_retry_at"] = self.next_retry_at
        if self.last_error is not None:
            changes["last_error"] = self.last_error
        stamped = _STAMPED.get(self.event)
        if stamped is not None:
            changes[stamped] = self.at
        return changes

    @property
    def changes_key(self) -> tuple[object, ...]:
        """Every field but the row's id: transitions with equal keys have equal changes()
        and guards, so a batch of them can share one write."""
        return _ALL_BUT_THE_ROW(self)


# The moment an event stamps on its row, besides updated_at.
_STAMPED = {OutboxEvent.PUBLISH_ACKED: "published_at", OutboxEvent.CONSUMED: "consumed_at"}
# attrgetter builds the key in C: the relay keys every transition it writes.
_ALL_BUT_THE_ROW: Callable[[Transition], tuple[object, ...]] = operator.attrgetter(
    *(field.name for field in attrs.fields(Transition) if field.name != "outbox_id")
)


def consumed(outbox_id: int, at: datetime) -> Transition:
    """Consumption is decided without loading the row; the guard enforces the table."""
    return Transition(outbox_id, OutboxEvent.CONSUMED, OutboxStatus.CONSUMED, at)


def handler_failed(outbox_id: int, at: datetime, reason: str) -> Transition:
    """Decided by the consumer from the record alone, like consumed; the guard enforces the
    table, so a row consumed meanwhile stays consumed."""
    return Transition(
        outbox_id, OutboxEvent.HANDLER_FAILED, OutboxStatus.DEAD, at, None, None, reason
    )


def requeued(outbox_id: int, at: datetime) -> Transition:
    return Transition(outbox_id, OutboxEvent.REQUEUED, OutboxStatus.PENDING, at, 0, at)


def swept(outbox_id: int, at: datetime) -> Transition:
    return Transition(outbox_id, OutboxEvent.SWEPT, OutboxStatus.PENDING, at, None, at)


@attrs.define
class OutboxMessage:
    """A recorded chat message on its way to the bus and into chat history."""

    id: int
    event_id: str
    biz_type: str
    topic: str
    message_key: str
    payload: str
    status: OutboxStatus
    created_at: datetime
    updated_at: datetime
    next_retry_at: datetime
    retry_count: int = 0
    max_retry: int = DEFAULT_MAX_RETRY
    last_error: str | None = None
    published_at: datetime | None = None
    consumed_at: datetime | None = None
    traceparent: str | None = None
    """The W3C trace context the message was recorded under, carried to the consumer."""

    def mark_published(self, at: datetime) -> Transition | None:
        if self._target(OutboxEvent.PUBLISH_ACKED) is None:
            return None
        acked = Transition(self.id, OutboxEvent.PUBLISH_ACKED, OutboxStatus.PUBLISHED, at)
        return self._apply(acked)

    def record_publish_failure(
        self, failure: PublishFailure, at: datetime, policy: RetryPolicy
    ) -> Transition | None:
        event = _E.PUBLISH_FAILED if failure.retryable else _E.PUBLISH_FAILED_FATALLY
        if self._target(event) is None:
            return None
        attempts = min(self.retry_count + failure.counted, self.max_retry)
        if not failure.retryable or attempts >= self.max_retry:
            transition = Transition(
                self.id,
                OutboxEvent.PUBLISH_FAILED_FATALLY,
                OutboxStatus.DEAD,
                at,
                attempts,
                self.next_retry_at,
                _dead_reason(failure, attempts, self.max_retry),
            )
        else:
            transition = Transition(
                self.id,
                event,
                OutboxStatus.PENDING,
                at,
                attempts,
                at + policy.backoff(max(attempts, 1)),
                failure.reason,
            )
        return self._apply(transition)

    def mark_consumed(self, at: datetime) -> Transition | None:
        return self._apply_if_changes(consumed(self.id, at))

    def record_handler_failure(self, reason: str, at: datetime) -> Transition | None:
        return self._apply_if_changes(handler_failed(self.id, at, reason))

    def requeue(self, at: datetime) -> Transition | None:
        return self._apply_if_changes(requeued(self.id, at))

    def sweep(self, at: datetime) -> Transition | None:
        return self._apply_if_changes(swept(self.id, at))

    def _target(self, event: OutboxEvent) -> OutboxStatus | None:
        target = TABLE[self.status][event]
        if target is _Outcome.REFUSED:
            raise IllegalTransition(f"outbox {self.id}: {event} is refused in {self.status}")
        return target if isinstance(target, OutboxStatus) else None

    def _apply_if_changes(self, transition: Transition) -> Transition | None:
        if self._target(transition.event) is None:
            return None
        return self._apply(transition)

    def _apply(self, transition: Transition) -> Transition:
        apply_to(self, transition)
        return transition


HOLDING_STATUSES = frozenset({OutboxStatus.PENDING, OutboxStatus.DEAD})


def holds_back_later_messages(message: OutboxMessage) -> bool:
    """Invariant 6: until a message is published (or consumed), its conversation's later
    messages wait. So a claim starts a conversation at its head, its earliest pending or
    dead message, only when that one is pending and due, and publishes later ones after it."""
    return message.status in HOLDING_STATUSES


def apply_to(message: OutboxMessage, transition: Transition) -> None:
    """Write a transition's changes onto a message (shared by the entity and the fakes)."""
    for field, value in transition.changes().items():
        setattr(message, field, value)


def _dead_reason(failure: PublishFailure, attempts: int, max_retry: int) -> str:
    if not failure.retryable:
        return failure.reason
    return f"retries exhausted ({attempts}/{max_retry}): {failure.reason}"
