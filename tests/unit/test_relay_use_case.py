"""The relay use case, against the in-memory fakes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chat_outbox.application.ports import NewOutboxMessage
from chat_outbox.domain import Envelope, OutboxStatus, PublishFailure
from tests.unit.conftest import (
    T0,
    TOPIC,
    Harness,
    event_id_of,
    failing,
)
from tests.unit.use_cases import (
    fail_relay,
    relay_all,
    relay_dies_mid_publish,
)

pytestmark = pytest.mark.unit


async def test_a_round_publishes_the_head_of_every_conversation(harness: Harness) -> None:
    """One round publishes each conversation's earliest message, and only that one."""
    rows = [await harness.record(conv) for conv in ("a", "b", "a", "c", "a")]

    await harness.relay().relay_due()

    assert harness.published_event_ids() == [rows[i].event_id for i in (0, 1, 3)]


async def test_relay_publishes_each_conversation_in_recording_order(harness: Harness) -> None:
    """Relaying until nothing is due publishes every row, each conversation in order."""
    rows = [await harness.record(conv) for conv in ("a", "b", "a", "c", "a")]

    await relay_all(harness)

    published = harness.published_event_ids()
    assert sorted(published) == sorted(row.event_id for row in rows)
    in_a = [row.event_id for row in rows if row.message_key == "a"]
    assert [event_id for event_id in published if event_id in in_a] == in_a


async def test_relay_sends_envelope_keyed_by_conversation_with_headers(harness: Harness) -> None:
    """Each record carries the envelope as value, the conversation as key, and id headers."""
    row = await harness.record("conv-7", "hi there")

    await harness.relay().relay_due()

    [sent] = harness.bus.log
    assert sent.topic == TOPIC
    assert sent.key == b"conv-7"
    assert sent.value == Envelope.for_outbox_message(row).encode()
    assert sent.headers == (
        ("event_id", row.event_id.encode()),
        ("biz_type", b"chat_history_persist"),
        ("schema_version", b"1"),
    )


async def test_relay_marks_acked_rows_published(harness: Harness) -> None:
    """A row the bus acknowledged is published, stamped with the ack time."""
    row = await harness.record()
    harness.clock.advance(timedelta(seconds=5))

    report = await harness.relay().relay_due()

    assert (harness.status(row.id), harness.row(row.id).published_at) == (
        OutboxStatus.PUBLISHED,
        T0 + timedelta(seconds=5),
    )
    assert (report.claimed, report.published) == (1, 1)


async def test_relay_with_nothing_due_publishes_nothing(harness: Harness) -> None:
    """An empty outbox gives an empty report and an empty bus."""
    report = await harness.relay().relay_due()

    assert (report.claimed, harness.bus.log) == (0, [])


async def test_retryable_failure_leaves_row_pending_and_scheduled(harness: Harness) -> None:
    """A retryable publish failure keeps the row pending, counted, due in the future."""
    outbox_id = await fail_relay(harness, PublishFailure("broker timeout"))

    row = harness.row(outbox_id)
    assert (row.status, row.retry_count, row.last_error) == (
        OutboxStatus.PENDING,
        1,
        "broker timeout",
    )
    assert row.next_retry_at > harness.clock.now()


async def test_retrying_row_is_not_claimed_before_its_retry_time(harness: Harness) -> None:
    """Until the clock reaches next_retry_at, the relay leaves the failed row alone."""
    outbox_id = await fail_relay(harness, PublishFailure("broker timeout"))
    retry_at = harness.row(outbox_id).next_retry_at
    harness.clock.current = retry_at - timedelta(microseconds=1)

    report = await harness.relay().relay_due()

    assert (report.claimed, harness.bus.log, harness.status(outbox_id)) == (
        0,
        [],
        OutboxStatus.PENDING,
    )


async def test_retrying_row_is_published_once_its_retry_time_comes(harness: Harness) -> None:
    """At next_retry_at the relay claims the row again and publishes it."""
    outbox_id = await fail_relay(harness, PublishFailure("broker timeout"))
    harness.clock.current = harness.row(outbox_id).next_retry_at

    report = await harness.relay().relay_due()

    assert (report.published, harness.status(outbox_id)) == (1, OutboxStatus.PUBLISHED)
    assert len(harness.bus.log) == 1


async def test_fatal_failure_makes_row_dead_with_last_error(harness: Harness) -> None:
    """A fatal publish failure ends the row dead, with the bus's reason."""
    outbox_id = await fail_relay(harness, PublishFailure.fatal("message too large"))

    row = harness.row(outbox_id)
    assert (row.status, row.last_error) == (OutboxStatus.DEAD, "message too large")


async def test_exhausted_retries_make_row_dead(harness: Harness) -> None:
    """After max_retry retryable failures the row is dead, never retried again."""
    outbox_id = await fail_relay(harness, PublishFailure("timeout"), max_retry=2)
    harness.clock.advance(timedelta(hours=1))
    harness.bus.fail_with = failing(PublishFailure("timeout"))
    await harness.relay().relay_due()
    harness.clock.advance(timedelta(hours=1))

    report = await harness.relay().relay_due()

    row = harness.row(outbox_id)
    assert (row.status, row.retry_count, report.claimed) == (OutboxStatus.DEAD, 2, 0)
    assert row.last_error is not None
    assert "retries exhausted (2/2)" in row.last_error


async def test_claimed_row_is_not_claimed_again_within_its_lease(harness: Harness) -> None:
    """A row claimed by a relay that died mid-publish stays hidden until its lease ends."""
    row = await harness.record()
    await relay_dies_mid_publish(harness)
    harness.clock.advance(timedelta(seconds=59))

    report = await harness.relay().relay_due()

    assert (report.claimed, harness.bus.log, harness.status(row.id)) == (
        0,
        [],
        OutboxStatus.PENDING,
    )


async def test_claimed_row_is_claimed_again_when_its_lease_expires(harness: Harness) -> None:
    """Once the dead relay's lease runs out another relay publishes the row."""
    row = await harness.record()
    await relay_dies_mid_publish(harness)
    harness.clock.advance(timedelta(seconds=60))

    report = await harness.relay().relay_due()

    assert (report.published, harness.status(row.id)) == (1, OutboxStatus.PUBLISHED)


async def test_row_with_corrupt_payload_goes_dead_without_stopping_the_relay(
    harness: Harness,
) -> None:
    """A row whose payload cannot be enveloped is dead; the rows around it are published."""
    before = await harness.record("a")
    async with harness.uow() as uow:
        corrupt = await uow.outbox.add(
            NewOutboxMessage(
                event_id=harness.event_ids(),
                biz_type="chat_history_persist",
                topic=TOPIC,
                message_key="b",
                payload='{"user_id": "not a number"',
                max_retry=20,
                created_at=T0,
            )
        )
        await uow.commit()
    after = await harness.record("c")

    report = await harness.relay().relay_due()

    dead = harness.row(corrupt.id)
    assert dead.status is OutboxStatus.DEAD
    assert dead.last_error is not None
    assert f"outbox row {corrupt.id} has a bad payload" in dead.last_error
    assert harness.published_event_ids() == [before.event_id, after.event_id]
    assert (report.published, report.dead) == (2, 1)


async def test_relay_does_not_publish_later_message_of_conversation_in_same_batch_as_failed_one(
    harness: Harness,
) -> None:
    """Invariant 6: when message n of a conversation fails retryably, n+1 is not published."""
    first = await harness.record("a", "first")
    second = await harness.record("a", "second")
    harness.bus.fail_with = failing(
        PublishFailure("timeout"), when=lambda r: event_id_of(r) == first.event_id
    )

    await harness.relay().relay_due()

    assert second.event_id not in harness.published_event_ids()
    assert harness.status(second.id) is OutboxStatus.PENDING


async def test_relay_holds_back_later_message_while_earlier_one_waits_for_retry(
    harness: Harness,
) -> None:
    """Invariant 6: a message recorded after one waiting for a retry waits too."""
    first = await fail_relay(harness, PublishFailure("timeout"))
    second = await harness.record("conv-1", "second")

    await harness.relay().relay_due()

    assert harness.bus.log == []
    assert (harness.status(first), harness.status(second.id)) == (
        OutboxStatus.PENDING,
        OutboxStatus.PENDING,
    )


async def test_retry_of_one_conversation_does_not_block_another(harness: Harness) -> None:
    """Invariant 6: other conversations are published while one waits for its retry."""
    waiting = await harness.record("a")
    other = await harness.record("b")
    harness.bus.fail_with = failing(PublishFailure("timeout"), when=lambda r: r.key == "a")

    await harness.relay().relay_due()

    assert harness.published_event_ids() == [other.event_id]
    assert harness.status(waiting.id) is OutboxStatus.PENDING
