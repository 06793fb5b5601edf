"""A transition's changes are described once (Transition.changes): the entity and the
in-memory fake write exactly those fields, guarded by the same statuses."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import timedelta

import attrs
import pytest

from chat_outbox.adapters.memory import InMemoryOutboxRepository
from chat_outbox.domain import (
    OutboxEvent,
    OutboxMessage,
    OutboxStatus,
    PublishFailure,
    RetryPolicy,
    Transition,
    consumed,
    requeued,
    swept,
)
from tests.unit.conftest import ARCHITECTURE_TABLE, T0, make_outbox_message

pytestmark = pytest.mark.unit

AT = T0 + timedelta(minutes=3)
POLICY = RetryPolicy(rand=lambda: 1.0)
_S = OutboxStatus


def acked(message: OutboxMessage) -> Transition | None:
    return message.mark_published(AT)


def failed(message: OutboxMessage) -> Transition | None:
    return message.record_publish_failure(PublishFailure("timeout"), AT, POLICY)


def failed_fatally(message: OutboxMessage) -> Transition | None:
    return message.record_publish_failure(PublishFailure.fatal("too big"), AT, POLICY)


def exhausted(message: OutboxMessage) -> Transition | None:
    return attrs.evolve(message, retry_count=message.max_retry - 1).record_publish_failure(
        PublishFailure("timeout"), AT, POLICY
    )


EVENTS: dict[OutboxEvent, Callable[[OutboxMessage], Transition | None]] = {
    OutboxEvent.PUBLISH_ACKED: acked,
    OutboxEvent.PUBLISH_FAILED: failed,
    OutboxEvent.PUBLISH_FAILED_FATALLY: failed_fatally,
    OutboxEvent.CONSUMED: lambda message: message.mark_consumed(AT),
    OutboxEvent.REQUEUED: lambda message: message.requeue(AT),
    OutboxEvent.SWEPT: lambda message: message.sweep(AT),
    OutboxEvent.HANDLER_FAILED: lambda message: message.record_handler_failure("refused", AT),
}
CHANGING = [
    pytest.param(status, event, id=f"{status}-{event}")
    for status, row in ARCHITECTURE_TABLE.items()
    for event, outcome in row.items()
    if isinstance(outcome, OutboxStatus)
]


def test_an_ack_changes_the_status_and_stamps_published_at() -> None:
    transition = Transition(1, OutboxEvent.PUBLISH_ACKED, _S.PUBLISHED, AT)

    assert transition.changes() == {"status": _S.PUBLISHED, "updated_at": AT, "published_at": AT}


def test_a_consumed_mark_changes_the_status_and_stamps_consumed_at() -> None:
    assert consumed(1, AT).changes() == {"status": _S.CONSUMED, "updated_at": AT, "consumed_at": AT}


def test_a_retryable_failure_changes_the_attempts_the_next_try_and_the_error() -> None:
    transition = failed(make_outbox_message(_S.PENDING, retry_count=2))

    assert transition is not None
    assert transition.changes() == {
        "status": _S.PENDING,
        "updated_at": AT,
        "retry_count": 3,
        "next_retry_at": AT + POLICY.backoff(3),
        "last_error": "timeout",
    }


def test_a_requeue_resets_the_attempts_and_a_sweep_keeps_them() -> None:
    """Both make the row due now; only the operator's requeue gives it its retries back."""
    assert requeued(1, AT).changes() == {
        "status": _S.PENDING,
        "updated_at": AT,
        "retry_count": 0,
        "next_retry_at": AT,
    }
    assert swept(1, AT).changes() == {"status": _S.PENDING, "updated_at": AT, "next_retry_at": AT}


@pytest.mark.parametrize(("status", "event"), CHANGING)
def test_the_entity_changes_exactly_the_fields_the_transition_names(
    status: OutboxStatus, event: OutboxEvent
) -> None:
    """Every other field keeps its value; each named one takes the value changes() gives."""
    message = make_outbox_message(_S(status), retry_count=2, last_error="earlier")
    before = attrs.asdict(message, recurse=False)

    transition = EVENTS[event](message)

    assert transition is not None
    after = attrs.asdict(message, recurse=False)
    changed = {field for field in before if before[field] != after[field]}
    assert changed <= set(transition.changes())
    assert {field: after[field] for field in transition.changes()} == transition.changes()


@pytest.mark.parametrize(("status", "event"), CHANGING)
async def test_the_fake_writes_the_row_the_entity_becomes(
    status: OutboxStatus, event: OutboxEvent
) -> None:
    """The in-memory repository's guarded write leaves the row equal to the entity."""
    stored = make_outbox_message(_S(status), retry_count=2, last_error="earlier")
    entity = attrs.evolve(stored)
    transition = EVENTS[event](entity)
    assert transition is not None
    fake = InMemoryOutboxRepository({stored.id: stored}, itertools.count(100))

    assert await fake.apply([transition]) == 1

    assert stored == entity


async def test_the_fake_refuses_a_transition_outside_its_guard() -> None:
    """A consumed row takes no ack: the guard, not the caller, keeps it consumed."""
    stored = make_outbox_message(_S.CONSUMED, consumed_at=T0)
    before = attrs.evolve(stored)
    ack = Transition(stored.id, OutboxEvent.PUBLISH_ACKED, _S.PUBLISHED, AT)
    fake = InMemoryOutboxRepository({stored.id: stored}, itertools.count(100))

    assert await fake.apply([ack]) == 0

    assert stored == before


def test_retries_running_out_kill_the_row_with_the_reason() -> None:
    transition = exhausted(make_outbox_message(_S.PENDING))

    assert transition is not None
    assert transition.changes()["status"] is _S.DEAD
    assert transition.changes()["last_error"] == "retries exhausted (20/20): timeout"


def test_transitions_alike_but_for_their_row_share_a_key_and_changes() -> None:
    """The key batches a write: it ignores the row and tells any other difference apart."""
    one, other = consumed(1, AT), consumed(2, AT)
    later = consumed(1, AT + timedelta(seconds=1))

    assert one.changes_key == other.changes_key
    assert one.changes() == other.changes()
    assert one.changes_key != later.changes_key
    assert one.changes_key != requeued(1, AT).changes_key
