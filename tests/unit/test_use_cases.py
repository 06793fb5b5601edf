"""The use cases against the in-memory fakes: record, relay, consume, operate."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest

from chat_outbox.application.consuming import Consumer
from chat_outbox.application.errors import IdempotencyConflict, StoreUnavailable
from chat_outbox.application.operations import (
    held_behind_dead,
    list_dead,
    outbox_stats,
    purge_consumed,
    read_history,
    requeue_dead,
    sweep_stale_published,
)
from chat_outbox.application.persisting import HistoryWriter
from chat_outbox.application.ports import DeadSelector, NewOutboxMessage
from chat_outbox.application.recording import (
    RecordChatMessage,
    idempotent_event_id,
    record_chat_message,
)
from chat_outbox.application.relay_loop import run_relay
from chat_outbox.application.relaying import Relay
from chat_outbox.domain import ChatMessage, Envelope, OutboxStatus, PublishFailure, Role
from tests.unit.conftest import (
    T0,
    TOPIC,
    CrashingBus,
    FlakyCommits,
    Harness,
    LostAcks,
    RecordingSleep,
    chat,
    event_id_of,
    failing,
)

pytestmark = pytest.mark.unit

TIMEOUT = 0.0
"""Fetch without waiting: every test knows what is on the bus."""


async def fail_relay(harness: Harness, failure: PublishFailure, max_retry: int = 20) -> int:
    """Record one message and relay it into `failure`; return its outbox id."""
    row = await harness.record(max_retry=max_retry)
    harness.bus.fail_with = failing(failure)
    await harness.relay().relay_due()
    harness.bus.fail_with = None
    return row.id


async def make_dead(harness: Harness, conversation_id: str) -> int:
    row = await harness.record(conversation_id)
    harness.bus.fail_with = failing(PublishFailure.fatal("rejected"))
    await harness.relay().relay_due()
    harness.bus.fail_with = None
    return row.id


async def relay_dies_mid_publish(harness: Harness) -> None:
    """A relay with a 60 s lease claims the due rows, then its process dies while publishing."""
    crashing = Relay(harness.uow, CrashingBus(), harness.clock, lease=timedelta(seconds=60))
    with pytest.raises(RuntimeError, match="relay process killed"):
        await crashing.relay_due()


async def relay_all(harness: Harness) -> None:
    """Relay rounds until nothing is due: a conversation's messages go one per round."""
    await run_relay(harness.relay(), asyncio.Event(), once=True)


async def relay_and_consume(harness: Harness) -> None:
    await relay_all(harness)
    await harness.consumer().consume_batch(TIMEOUT)


async def record_then_fail_business_write(harness: Harness) -> None:
    async with harness.uow() as uow:
        await record_chat_message(
            uow, chat(), topic=TOPIC, clock=harness.clock, event_ids=harness.event_ids
        )
        raise ValueError("business rule violated")


# --- recording -------------------------------------------------------------------------


async def test_uncommitted_unit_of_work_leaves_no_outbox_row(harness: Harness) -> None:
    """Recording inside a transaction the caller never commits leaves nothing behind."""
    async with harness.uow() as uow:
        await record_chat_message(
            uow, chat(), topic=TOPIC, clock=harness.clock, event_ids=harness.event_ids
        )

    assert harness.store.outbox == {}


async def test_failed_business_write_rolls_back_the_outbox_row(harness: Harness) -> None:
    """When the caller's business write fails after recording, the outbox row goes too."""
    with pytest.raises(ValueError, match="business rule violated"):
        await record_then_fail_business_write(harness)

    assert harness.store.outbox == {}


async def test_committed_unit_of_work_leaves_one_pending_row(harness: Harness) -> None:
    """Recording and committing stores one pending row, due now, with the chat as payload."""
    async with harness.uow() as uow:
        recorded = await record_chat_message(
            uow,
            chat("conv-9", "héllo 🙂"),
            topic=TOPIC,
            clock=harness.clock,
            event_ids=harness.event_ids,
            max_retry=5,
        )
        await uow.commit()

    row = harness.row(recorded.id)
    assert list(harness.store.outbox) == [recorded.id]
    assert (row.status, row.retry_count, row.max_retry, row.next_retry_at) == (
        OutboxStatus.PENDING,
        0,
        5,
        T0,
    )
    assert (row.biz_type, row.topic, row.message_key) == ("chat_history_persist", TOPIC, "conv-9")
    assert json.loads(row.payload) == {
        "user_id": 7,
        "conversation_id": "conv-9",
        "role": "user",
        "message": "héllo 🙂",
    }


# --- relaying --------------------------------------------------------------------------


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


# --- consuming -------------------------------------------------------------------------


async def test_consume_persists_history_and_marks_rows_consumed(harness: Harness) -> None:
    """A consumed batch is in chat history and its outbox rows are consumed."""
    rows = [await harness.record("conv-1", text) for text in ("one", "two")]
    await relay_all(harness)

    report = await harness.consumer().consume_batch(TIMEOUT)

    assert [e.message for e in await read_history(harness.uow, "conv-1")] == ["one", "two"]
    assert [harness.status(r.id) for r in rows] == [OutboxStatus.CONSUMED] * 2
    assert harness.row(rows[0].id).consumed_at == T0
    assert (report.received, report.persisted, report.duplicates) == (2, 2, 0)


async def test_consume_records_history_entry_fields(harness: Harness) -> None:
    """A history entry keeps the event id, outbox id, ids, role, text and recording time."""
    row = await harness.record("conv-3", "こんにちは")
    await relay_and_consume(harness)

    [entry] = await read_history(harness.uow, "conv-3")

    assert (entry.event_id, entry.outbox_id, entry.user_id, entry.role) == (
        row.event_id,
        row.id,
        7,
        Role.USER,
    )
    assert (entry.message, entry.recorded_at) == ("こんにちは", T0)


async def test_consume_acknowledges_the_batch_after_persisting(harness: Harness) -> None:
    """After a successful batch every delivered record is acknowledged."""
    for _ in range(3):
        await harness.record()
    await relay_all(harness)

    await harness.consumer().consume_batch(TIMEOUT)

    assert harness.bus.acknowledged == 3


async def test_consume_with_nothing_delivered_reports_nothing(harness: Harness) -> None:
    """An empty fetch changes nothing and reports zero."""
    report = await harness.consumer().consume_batch(TIMEOUT)

    assert (report.received, harness.store.history, harness.bus.acknowledged) == (0, {}, 0)


async def test_redelivered_batch_does_not_duplicate_history(harness: Harness) -> None:
    """A batch persisted but never acknowledged comes again and adds nothing to history."""
    for text in ("one", "two"):
        await harness.record("conv-1", text)
    await relay_all(harness)
    await harness.consumer(source=LostAcks(harness.bus)).consume_batch(TIMEOUT)
    harness.bus.crash_consumer()

    report = await harness.consumer().consume_batch(TIMEOUT)

    assert (report.received, report.persisted, report.duplicates) == (2, 0, 2)
    assert [e.message for e in await read_history(harness.uow, "conv-1")] == ["one", "two"]
    assert len(harness.store.history) == 2


async def test_same_record_twice_in_one_batch_is_persisted_once(harness: Harness) -> None:
    """A record published twice (republish after a sweep) lands in history once."""
    row = await harness.record()
    envelope = Envelope.for_outbox_message(row).encode()
    harness.bus.produce_raw(envelope, b"conv-1")
    harness.bus.produce_raw(envelope, b"conv-1")

    report = await harness.consumer().consume_batch(TIMEOUT)

    assert (report.persisted, report.duplicates, len(harness.store.history)) == (1, 1, 1)


async def test_malformed_record_is_dead_lettered_with_reason(harness: Harness) -> None:
    """A record that cannot be decoded is parked in the dead-letter queue with its reason."""
    harness.bus.produce_raw(b"{oops", b"conv-1")

    await harness.consumer().consume_batch(TIMEOUT)

    [(record, reason)] = harness.bus.dead_letters
    assert (record.offset, record.value) == (0, b"{oops")
    assert reason.startswith("not JSON:")


async def test_valid_records_after_a_malformed_one_are_persisted(harness: Harness) -> None:
    """A poison record does not block the valid records behind it, and all are acknowledged."""
    harness.bus.produce_raw(None, b"conv-1")
    rows = [await harness.record("conv-1", text) for text in ("one", "two")]
    await relay_all(harness)

    report = await harness.consumer().consume_batch(TIMEOUT)

    assert [e.event_id for e in await read_history(harness.uow, "conv-1")] == [
        r.event_id for r in rows
    ]
    assert harness.bus.dead_letters[0][1] == "empty record"
    assert (report.dead_lettered, report.persisted, harness.bus.acknowledged) == (1, 2, 3)


async def test_transient_store_failure_is_retried_before_acknowledging(harness: Harness) -> None:
    """While commits fail with StoreUnavailable the batch is retried, unacknowledged and unsaved."""
    await harness.record()
    await harness.relay().relay_due()
    sleep = RecordingSleep(watch=lambda: (harness.bus.acknowledged, len(harness.store.history)))
    consumer = Consumer(
        source=harness.bus,
        writer=HistoryWriter(FlakyCommits(harness.store, failures=3), harness.clock),
        policy=harness.policy,
        sleep=sleep,
    )

    await consumer.consume_batch(TIMEOUT)

    assert sleep.seen == [(0, 0)] * 3
    assert (harness.bus.acknowledged, len(harness.store.history)) == (1, 1)


async def test_transient_store_failure_backs_off_exponentially(harness: Harness) -> None:
    """Each retry of the batch waits the policy's backoff for that attempt."""
    await harness.record()
    await harness.relay().relay_due()
    sleep = RecordingSleep()
    consumer = Consumer(
        source=harness.bus,
        writer=HistoryWriter(FlakyCommits(harness.store, failures=3), harness.clock),
        policy=harness.policy,
        sleep=sleep,
    )

    await consumer.consume_batch(TIMEOUT)

    assert sleep.delays == [0.5, 1.0, 2.0]


async def test_store_failure_while_stopping_raises_without_acknowledging(harness: Harness) -> None:
    """During shutdown a failing commit gives up: the batch stays unacknowledged for redelivery."""
    row = await harness.record()
    await harness.relay().relay_due()
    consumer = Consumer(
        source=harness.bus,
        writer=HistoryWriter(FlakyCommits(harness.store, failures=1), harness.clock),
        sleep=RecordingSleep(),
    )
    consumer.stopping.set()

    with pytest.raises(StoreUnavailable):
        await consumer.consume_batch(TIMEOUT)

    assert (harness.bus.acknowledged, harness.store.history) == (0, {})
    assert harness.status(row.id) is OutboxStatus.PUBLISHED


async def test_history_is_read_in_recording_order_whatever_the_delivery_order(
    harness: Harness,
) -> None:
    """Chat history comes back in outbox-id order even when the bus delivered it reversed."""
    rows = [await harness.record("conv-1", text) for text in ("one", "two", "three")]
    for row in reversed(rows):
        harness.bus.produce_raw(Envelope.for_outbox_message(row).encode(), b"conv-1")
    await harness.consumer().consume_batch(TIMEOUT)

    history = await read_history(harness.uow, "conv-1")

    assert [e.message for e in history] == ["one", "two", "three"]


async def test_history_is_read_per_conversation(harness: Harness) -> None:
    """Reading a conversation's history leaves out other conversations."""
    await harness.record("a", "for a")
    await harness.record("b", "for b")
    await relay_and_consume(harness)

    assert [e.message for e in await read_history(harness.uow, "b")] == ["for b"]


# --- operating -------------------------------------------------------------------------


async def test_requeue_dead_by_id_moves_only_that_row(harness: Harness) -> None:
    """Requeueing one dead id puts it back to pending and leaves other dead rows dead."""
    target = await make_dead(harness, "a")
    other = await make_dead(harness, "b")

    moved = await requeue_dead(harness.uow, harness.clock, DeadSelector(outbox_id=target))

    assert moved == 1
    assert (harness.status(target), harness.status(other)) == (
        OutboxStatus.PENDING,
        OutboxStatus.DEAD,
    )


async def test_requeue_dead_by_conversation_moves_only_its_rows(harness: Harness) -> None:
    """Requeueing a conversation moves its dead row and no other conversation's."""
    mine = await make_dead(harness, "a")
    theirs = await make_dead(harness, "b")

    moved = await requeue_dead(harness.uow, harness.clock, DeadSelector(conversation_id="a"))

    assert moved == 1
    assert harness.status(mine) is OutboxStatus.PENDING
    assert harness.status(theirs) is OutboxStatus.DEAD


async def test_a_dead_message_holds_back_its_conversation_until_requeued(
    harness: Harness,
) -> None:
    """Invariant 6: rows after a dead one wait; requeueing releases all of them in order."""
    dead = await make_dead(harness, "a")
    held = [await harness.record("a", text) for text in ("two", "three")]
    other = await harness.record("b")

    await harness.relay().relay_due()
    assert harness.published_event_ids() == [other.event_id]
    assert [harness.status(row.id) for row in held] == [OutboxStatus.PENDING] * 2

    await requeue_dead(harness.uow, harness.clock, DeadSelector(conversation_id="a"))
    await relay_all(harness)

    dead_event = harness.store.outbox[dead].event_id
    assert harness.published_event_ids()[1:] == [dead_event] + [row.event_id for row in held]


async def test_requeue_all_dead_moves_every_dead_row_in_small_batches(harness: Harness) -> None:
    """Requeueing all, a row per transaction, moves every dead row and nothing else."""
    dead = [await make_dead(harness, conv) for conv in ("a", "b", "c")]
    published = await harness.record("d")
    await harness.relay().relay_due()

    moved = await requeue_dead(harness.uow, harness.clock, DeadSelector(), batch=1)

    assert moved == 3
    assert [harness.status(i) for i in dead] == [OutboxStatus.PENDING] * 3
    assert harness.status(published.id) is OutboxStatus.PUBLISHED


async def test_requeued_row_has_retries_reset_and_is_published_again(harness: Harness) -> None:
    """A row dead from exhausted retries restarts at retry_count 0 and reaches the bus."""
    outbox_id = await fail_relay(harness, PublishFailure("timeout"), max_retry=1)
    harness.clock.advance(timedelta(minutes=1))
    await requeue_dead(harness.uow, harness.clock, DeadSelector(outbox_id=outbox_id))
    requeued = harness.row(outbox_id)
    assert (requeued.retry_count, requeued.next_retry_at) == (0, harness.clock.now())

    await harness.relay().relay_due()

    assert harness.status(outbox_id) is OutboxStatus.PUBLISHED


async def test_list_dead_shows_dead_rows_with_their_errors(harness: Harness) -> None:
    """The dead-letter listing holds the dead rows, oldest first, with last_error."""
    first = await make_dead(harness, "a")
    second = await make_dead(harness, "b")

    dead = await list_dead(harness.uow, DeadSelector())

    assert [(m.id, m.last_error) for m in dead] == [(first, "rejected"), (second, "rejected")]


async def test_sweep_returns_stale_published_rows_to_pending(harness: Harness) -> None:
    """Rows published before the cutoff and never consumed go back to pending, due now."""
    stale = await harness.record("a")
    await harness.relay().relay_due()
    harness.clock.advance(timedelta(minutes=10))
    fresh = await harness.record("b")
    await harness.relay().relay_due()

    moved = await sweep_stale_published(
        harness.uow, harness.clock, published_before=T0 + timedelta(minutes=5)
    )

    assert moved == 1
    assert (harness.status(stale.id), harness.row(stale.id).next_retry_at) == (
        OutboxStatus.PENDING,
        harness.clock.now(),
    )
    assert harness.status(fresh.id) is OutboxStatus.PUBLISHED


async def test_sweep_leaves_consumed_rows_alone(harness: Harness) -> None:
    """A consumed row is not swept, however old its publish."""
    row = await harness.record()
    await relay_and_consume(harness)
    harness.clock.advance(timedelta(hours=1))

    moved = await sweep_stale_published(harness.uow, harness.clock, harness.clock.now())

    assert (moved, harness.status(row.id)) == (0, OutboxStatus.CONSUMED)


async def test_swept_row_is_republished_and_consumed_once(harness: Harness) -> None:
    """A swept row is published again; consuming both copies adds one history entry."""
    row = await harness.record()
    await harness.relay().relay_due()
    harness.clock.advance(timedelta(minutes=1))
    await sweep_stale_published(harness.uow, harness.clock, harness.clock.now())
    await harness.relay().relay_due()

    await harness.consumer().consume_batch(TIMEOUT)

    assert harness.published_event_ids() == [row.event_id, row.event_id]
    assert (harness.status(row.id), len(harness.store.history)) == (OutboxStatus.CONSUMED, 1)


async def test_purge_deletes_only_consumed_rows_older_than_cutoff(harness: Harness) -> None:
    """Purging removes consumed rows consumed before the cutoff, and keeps everything else."""
    old = await harness.record("a")
    await relay_and_consume(harness)
    old_dead = await make_dead(harness, "b")
    old_pending = await harness.record("c")
    harness.clock.advance(timedelta(days=2))
    recent = await harness.record("d")
    harness.bus.fail_with = failing(PublishFailure("timeout"), when=lambda r: r.key == "c")
    await relay_and_consume(harness)

    deleted = await purge_consumed(harness.uow, consumed_before=T0 + timedelta(days=1), batch=1)

    assert deleted == 1
    assert sorted(harness.store.outbox) == sorted([old_dead, old_pending.id, recent.id])
    assert harness.status(recent.id) is OutboxStatus.CONSUMED
    assert old.event_id in harness.store.history


async def test_purge_keeps_row_consumed_exactly_at_cutoff(harness: Harness) -> None:
    """The cutoff is exclusive: a row consumed at that instant stays."""
    row = await harness.record()
    await relay_and_consume(harness)

    deleted = await purge_consumed(harness.uow, consumed_before=T0)

    assert (deleted, list(harness.store.outbox)) == (0, [row.id])


async def test_stats_count_rows_by_status(harness: Harness) -> None:
    """Stats count every status, zeros included, and the dead count."""
    await make_dead(harness, "a")
    await harness.record("b")
    await relay_and_consume(harness)
    await harness.record("c")
    await harness.record("d")
    await harness.relay().relay_due()
    await harness.record("e")

    stats = await outbox_stats(harness.uow)

    assert stats.counts == {
        OutboxStatus.PENDING: 1,
        OutboxStatus.PUBLISHED: 2,
        OutboxStatus.CONSUMED: 1,
        OutboxStatus.DEAD: 1,
    }
    assert stats.dead == 1


async def test_stats_give_oldest_pending_and_published_times(harness: Harness) -> None:
    """Stats report when the oldest still-pending and oldest unconsumed published rows began."""
    await harness.record("consumed")
    await relay_and_consume(harness)
    harness.clock.advance(timedelta(minutes=1))
    await harness.record("published")
    await harness.relay().relay_due()
    harness.clock.advance(timedelta(minutes=1))
    await harness.record("pending-1")
    harness.clock.advance(timedelta(minutes=1))
    await harness.record("pending-2")

    stats = await outbox_stats(harness.uow)

    assert (stats.oldest_pending_at, stats.oldest_published_at) == (
        T0 + timedelta(minutes=2),
        T0 + timedelta(minutes=1),
    )


async def test_stats_of_empty_outbox_have_no_oldest_times(harness: Harness) -> None:
    """With nothing pending or published, the oldest times are None and counts are zero."""
    stats = await outbox_stats(harness.uow)

    assert (stats.oldest_pending_at, stats.oldest_published_at) == (None, None)
    assert set(stats.counts.values()) == {0}


async def test_stats_and_the_dead_listing_show_messages_held_behind_a_dead_one(
    harness: Harness,
) -> None:
    """Invariant 6's hold is visible: stats counts held rows, and per dead conversation too."""
    await make_dead(harness, "a")
    await harness.record("a", "two")
    await harness.record("a", "three")
    await harness.record("b", "free")

    figures = await outbox_stats(harness.uow)
    held = await held_behind_dead(harness.uow, ["a", "b"])

    assert figures.held == 2
    assert held == {"a": 2, "b": 0}


async def test_recording_once_returns_the_first_row_for_a_repeat_and_refuses_another_message(
    harness: Harness,
) -> None:
    """Under one event id the same message records once (a repeat gets the first row back),
    and a different message is an IdempotencyConflict that records nothing."""
    record = RecordChatMessage(harness.uow, harness.clock, harness.event_ids, "t")
    chat = ChatMessage.create(user_id=1, conversation_id="c", role="user", message="hi")
    event_id = idempotent_event_id("c", "req-1")
    first, replayed_first = await record.once(chat, event_id)
    again, replayed_again = await record.once(chat, event_id)
    other = ChatMessage.create(user_id=1, conversation_id="c", role="user", message="bye")
    with pytest.raises(IdempotencyConflict):
        await record.once(other, event_id)
    assert (replayed_first, replayed_again) == (False, True)
    assert again.id == first.id
    assert len(harness.store.outbox) == 1
