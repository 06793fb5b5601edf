"""The consumer use case, against the in-memory fakes."""

from __future__ import annotations

import pytest

from chat_outbox.application.consume.consuming import Consumer
from chat_outbox.application.consume.persisting import UnitOfWorkHistoryWriter
from chat_outbox.application.errors import StoreUnavailable
from chat_outbox.application.operate.operations import (
    read_history,
)
from chat_outbox.domain import Envelope, OutboxStatus, Role
from tests.unit.conftest import (
    T0,
    FlakyCommits,
    Harness,
    LostAcks,
    RecordingSleep,
)
from tests.unit.use_cases import (
    TIMEOUT,
    relay_all,
    relay_and_consume,
)

pytestmark = pytest.mark.unit


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
        writer=UnitOfWorkHistoryWriter(FlakyCommits(harness.store, failures=3)),
        clock=harness.clock,
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
        writer=UnitOfWorkHistoryWriter(FlakyCommits(harness.store, failures=3)),
        clock=harness.clock,
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
        writer=UnitOfWorkHistoryWriter(FlakyCommits(harness.store, failures=1)),
        clock=harness.clock,
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
