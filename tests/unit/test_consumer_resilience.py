"""The consumer never wedges: a record the database refuses for good is parked alone, an
unreachable dead-letter topic is waited out, and an unreachable bus costs no attempts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Self

import attrs
import pytest

from chat_outbox.adapters.memory import (
    InMemoryBus,
    InMemoryChatHistoryRepository,
    InMemoryStore,
    InMemoryUnitOfWork,
)
from chat_outbox.application.consume.consuming import Consumer
from chat_outbox.application.consume.persisting import UnitOfWorkHistoryWriter
from chat_outbox.application.errors import BusUnavailable
from chat_outbox.application.ports import IncomingRecord
from chat_outbox.domain import (
    ChatMessage,
    Envelope,
    HistoryEntry,
    MalformedEnvelope,
    OutboxStatus,
    PublishFailure,
    RetryPolicy,
)
from tests.unit.conftest import Harness, RecordingSleep, make_outbox_message
from tests.unit.outbox_rows import add_rows_for

pytestmark = pytest.mark.unit
POISON = "the database refuses this one"


def envelope(outbox_id: int, text: str) -> bytes:
    chat = ChatMessage.create(user_id=1, conversation_id="c", role="user", message=text)
    return Envelope(
        f"00000000-0000-0000-0000-{outbox_id:012d}", "chat_history_persist", 1,
        datetime(2026, 1, 1, tzinfo=UTC), "c", outbox_id, chat,
    ).encode()  # fmt: skip


class RefusingHistory(InMemoryChatHistoryRepository):
    """Raises a permanent error for a batch holding the poison text, as a constraint would."""

    async def add_many(self, entries: Sequence[HistoryEntry]) -> int:
        if any(entry.message == POISON for entry in entries):
            raise ValueError("value out of range for the column")
        return await super().add_many(entries)


class RefusingUnitOfWork(InMemoryUnitOfWork):
    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.history = RefusingHistory(self.history.entries)
        return self


@attrs.define
class DeadLetterOutage:
    """A source whose dead-letter topic is unreachable for the first `failures` tries."""

    bus: InMemoryBus
    failures: int
    tries: int = 0

    async def fetch(self, max_records: int, timeout: float) -> list[IncomingRecord]:
        return await self.bus.fetch(max_records, timeout)

    async def acknowledge(self, records: Sequence[IncomingRecord]) -> None:
        await self.bus.acknowledge(records)

    async def dead_letter(self, record: IncomingRecord, reason: str) -> None:
        self.tries += 1
        if self.tries <= self.failures:
            raise BusUnavailable("dead-letter topic unreachable")
        await self.bus.dead_letter(record, reason)


async def test_a_record_the_database_refuses_is_dead_lettered_alone() -> None:
    """The refused record goes to the DLQ with the reason; the others are persisted and the
    batch is acknowledged, so the partition does not wedge."""
    store, bus = InMemoryStore(), InMemoryBus()
    for outbox_id, text in ((1, "fine"), (2, POISON), (3, "also fine")):
        bus.produce_raw(envelope(outbox_id, text), b"c")
        add_rows_for(store, envelope(outbox_id, text))
    consumer = Consumer(
        bus,
        UnitOfWorkHistoryWriter(lambda: RefusingUnitOfWork(store)),
        Harness().clock,
        sleep=RecordingSleep(),
    )
    report = await consumer.consume_batch(0.0)
    assert report.persisted == 2
    assert report.dead_lettered == 1
    assert sorted(entry.message for entry in store.history.values()) == ["also fine", "fine"]
    [(parked, reason)] = bus.dead_letters
    assert parked.offset == 1
    assert reason == "cannot persist: ValueError"  # the type only: a driver's text can quote values
    assert bus.acknowledged == 3


async def test_an_unreachable_dead_letter_topic_is_retried_not_skipped() -> None:
    """A malformed record waits for the DLQ to come back; it is never acknowledged unparked."""
    bus = InMemoryBus()
    bus.produce_raw(b"not json", b"c")
    source = DeadLetterOutage(bus, failures=2)
    sleep = RecordingSleep(watch=lambda: bus.acknowledged)
    consumer = Consumer(
        source, UnitOfWorkHistoryWriter(Harness().uow), Harness().clock, sleep=sleep
    )
    report = await consumer.consume_batch(0.0)
    assert report.dead_lettered == 1
    assert len(sleep.delays) == 2
    assert sleep.seen == [0, 0]
    assert [reason for _, reason in bus.dead_letters] == [
        "not JSON: Expecting value at line 1 column 1"
    ]


def test_an_unreachable_bus_never_uses_up_a_messages_attempts() -> None:
    """A hundred 'bus unavailable' failures leave retry_count alone and the row pending."""
    message = make_outbox_message(max_retry=3)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(100):
        message.record_publish_failure(PublishFailure.unavailable("no broker"), at, RetryPolicy())
        at += timedelta(minutes=10)
    assert (message.status, message.retry_count) == (OutboxStatus.PENDING, 0)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("outbox_id", 2**70, "outbox_id must be a positive integer below 2\\*\\*63"),
        ("occurred_at", "0001-01-01T00:00:00+01:00", "occurred_at is out of range"),
        ("occurred_at", "1900-01-01T00:00:00+00:00", "occurred_at is out of range"),
    ],
)
def test_decode_rejects_values_no_database_column_can_hold(
    field: str, value: object, reason: str
) -> None:
    """Values that would make the insert fail for good are refused at decoding, with a reason."""
    import json

    document = json.loads(envelope(1, "hi"))
    document[field] = value
    with pytest.raises(MalformedEnvelope, match=reason):
        Envelope.decode(json.dumps(document).encode())
