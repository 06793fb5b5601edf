"""Every cell of the ARCHITECTURE.md state table, through the OutboxMessage methods."""

from __future__ import annotations

from datetime import timedelta

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chat_outbox.domain import (
    IllegalTransition,
    OutboxEvent,
    OutboxMessage,
    OutboxStatus,
    PublishFailure,
    RetryPolicy,
    Transition,
    statuses_changed_by,
)
from tests.unit.conftest import ARCHITECTURE_TABLE, NO_OP, REFUSED, T0, make_outbox_message

pytestmark = pytest.mark.unit

AT = T0 + timedelta(minutes=3)
POLICY = RetryPolicy(rand=lambda: 1.0)


def fire(message: OutboxMessage, event: OutboxEvent) -> Transition | None:
    """Send `event` to the entity through the method that handles it."""
    match event:
        case OutboxEvent.PUBLISH_ACKED:
            return message.mark_published(AT)
        case OutboxEvent.PUBLISH_FAILED:
            return message.record_publish_failure(PublishFailure("timeout"), AT, POLICY)
        case OutboxEvent.PUBLISH_FAILED_FATALLY:
            return message.record_publish_failure(PublishFailure.fatal("too big"), AT, POLICY)
        case OutboxEvent.CONSUMED:
            return message.mark_consumed(AT)
        case OutboxEvent.REQUEUED:
            return message.requeue(AT)
        case OutboxEvent.SWEPT:
            return message.sweep(AT)
        case OutboxEvent.HANDLER_FAILED:
            return message.record_handler_failure("handler refused", AT)
    raise AssertionError(event)


CELLS = [
    pytest.param(status, event, outcome, id=f"{status}-{event}")
    for status, row in ARCHITECTURE_TABLE.items()
    for event, outcome in row.items()
]
CHANGING = [p for p in CELLS if isinstance(p.values[2], OutboxStatus)]
NO_OPS = [p for p in CELLS if p.values[2] == NO_OP]
REFUSALS = [p for p in CELLS if p.values[2] == REFUSED]


@pytest.mark.parametrize(("status", "event", "expected"), CHANGING)
def test_event_moves_message_to_the_status_the_table_gives(
    status: OutboxStatus, event: OutboxEvent, expected: OutboxStatus
) -> None:
    """An event the table maps to a status moves the entity there and returns that transition."""
    message = make_outbox_message(status)

    transition = fire(message, event)

    assert transition is not None
    assert (transition.outbox_id, transition.to_status, transition.at) == (41, expected, AT)
    assert (message.status, message.updated_at) == (expected, AT)


@pytest.mark.parametrize(("status", "event", "expected"), NO_OPS)
def test_event_the_table_ignores_returns_none_and_changes_nothing(
    status: OutboxStatus, event: OutboxEvent, expected: str
) -> None:
    """A no-op cell returns None and leaves every field of the entity as it was."""
    message = make_outbox_message(status, retry_count=2, last_error="earlier")
    before = attrs.evolve(message)

    assert fire(message, event) is None
    assert message == before


@pytest.mark.parametrize(("status", "event", "expected"), REFUSALS)
def test_event_the_table_forbids_raises_illegal_transition(
    status: OutboxStatus, event: OutboxEvent, expected: str
) -> None:
    """A refused cell raises IllegalTransition naming the event and leaves the entity as it was."""
    message = make_outbox_message(status)
    before = attrs.evolve(message)

    with pytest.raises(IllegalTransition, match=f"{event} is refused in {status}"):
        fire(message, event)
    assert message == before


@pytest.mark.parametrize("event", list(OutboxEvent))
def test_statuses_changed_by_matches_the_table(event: OutboxEvent) -> None:
    """The guard of each event is exactly the statuses whose table cell is a status."""
    expected = {s for s, row in ARCHITECTURE_TABLE.items() if isinstance(row[event], OutboxStatus)}

    assert statuses_changed_by(event) == expected


@pytest.mark.parametrize(("status", "event", "expected"), CHANGING)
def test_transition_guard_is_the_events_changing_statuses(
    status: OutboxStatus, event: OutboxEvent, expected: OutboxStatus
) -> None:
    """The transition a method returns carries the guard of the event it implements."""
    transition = fire(make_outbox_message(status), event)

    assert transition is not None
    assert transition.guard == statuses_changed_by(event)


def test_retryable_failure_schedules_retry_after_backoff() -> None:
    """A retryable failure keeps the row pending, counts it, and makes it due at + backoff."""
    message = make_outbox_message(retry_count=2)

    message.record_publish_failure(PublishFailure("broker timeout"), AT, POLICY)

    assert message.status is OutboxStatus.PENDING
    assert message.retry_count == 3
    assert message.next_retry_at == AT + POLICY.backoff(3)
    assert message.next_retry_at == AT + timedelta(seconds=2)


def test_retryable_failure_keeps_its_reason_as_last_error() -> None:
    """last_error holds the latest failure's reason, replacing an older one."""
    message = make_outbox_message(last_error="old reason")

    message.record_publish_failure(PublishFailure("broker timeout"), AT, POLICY)

    assert message.last_error == "broker timeout"


def test_fatal_failure_records_reason_as_last_error() -> None:
    """A fatal failure makes the row dead with its reason in last_error."""
    message = make_outbox_message()

    message.record_publish_failure(PublishFailure.fatal("record too large"), AT, POLICY)

    assert (message.status, message.last_error) == (OutboxStatus.DEAD, "record too large")


def test_exhausted_retries_make_row_dead_with_exhaustion_reason() -> None:
    """The max_retry-th retryable failure is the last: the row goes dead and says why."""
    message = make_outbox_message(max_retry=3, retry_count=2)

    transition = message.record_publish_failure(PublishFailure("timeout"), AT, POLICY)

    assert transition is not None
    assert transition.event is OutboxEvent.PUBLISH_FAILED_FATALLY
    assert message.status is OutboxStatus.DEAD
    assert message.retry_count == 3
    assert message.last_error is not None
    assert "retries exhausted (3/3)" in message.last_error
    assert "timeout" in message.last_error


def test_repeated_retryable_failures_count_up_to_max_retry_then_stop() -> None:
    """Failing again and again counts 1, 2, 3 and ends dead at max_retry, never above."""
    message = make_outbox_message(max_retry=3)
    counts = []
    while message.status is OutboxStatus.PENDING:
        message.record_publish_failure(PublishFailure("timeout"), AT, POLICY)
        counts.append(message.retry_count)

    assert counts == [1, 2, 3]
    assert message.status is OutboxStatus.DEAD


def test_retryable_failure_at_retry_limit_does_not_exceed_max_retry() -> None:
    """A pending row already at max_retry that fails again goes dead with retry_count unchanged."""
    message = make_outbox_message(max_retry=3, retry_count=3)

    message.record_publish_failure(PublishFailure("timeout"), AT, POLICY)

    assert (message.status, message.retry_count) == (OutboxStatus.DEAD, 3)


@settings(max_examples=200, deadline=None)
@given(
    max_retry=st.integers(min_value=1, max_value=30),
    retryable=st.lists(st.booleans(), min_size=1, max_size=40),
)
def test_retry_count_never_exceeds_max_retry(max_retry: int, retryable: list[bool]) -> None:
    """Whatever sequence of failures arrives, retry_count stays within max_retry."""
    message = make_outbox_message(max_retry=max_retry)
    for is_retryable in retryable:
        message.record_publish_failure(PublishFailure("x", retryable=is_retryable), AT, POLICY)
        assert message.retry_count <= max_retry


def test_requeue_resets_retries_and_makes_row_due_now() -> None:
    """An operator requeue of a dead row resets retry_count to 0 and makes it due at once."""
    message = make_outbox_message(OutboxStatus.DEAD, retry_count=3, last_error="exhausted")

    message.requeue(AT)

    assert (message.status, message.retry_count, message.next_retry_at) == (
        OutboxStatus.PENDING,
        0,
        AT,
    )


def test_sweep_makes_published_row_due_again_keeping_its_retries() -> None:
    """A stale-published sweep puts the row back to pending, due now, retry_count kept."""
    message = make_outbox_message(OutboxStatus.PUBLISHED, retry_count=2, published_at=T0)

    message.sweep(AT)

    assert (message.status, message.next_retry_at, message.retry_count) == (
        OutboxStatus.PENDING,
        AT,
        2,
    )


def test_mark_published_stamps_published_at() -> None:
    """A publish ack records when the bus acknowledged the row."""
    message = make_outbox_message()

    message.mark_published(AT)

    assert message.published_at == AT


def test_mark_consumed_stamps_consumed_at() -> None:
    """Consumption records when the row reached chat history."""
    message = make_outbox_message(OutboxStatus.PUBLISHED)

    message.mark_consumed(AT)

    assert message.consumed_at == AT
