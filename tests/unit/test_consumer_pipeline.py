"""The consumer fetches and decodes the next batch while the last one is written, yet
writes and acknowledges one batch at a time, each only after its own commit."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import attrs
import pytest
from structlog.testing import capture_logs

from chat_outbox.adapters.clock import ManualClock
from chat_outbox.adapters.memory import InMemoryBus, InMemoryStore, InMemoryUnitOfWork
from chat_outbox.application.consume.consuming import Consumer
from chat_outbox.application.consume.loop import run_consumer
from chat_outbox.application.consume.persisting import UnitOfWorkHistoryWriter
from chat_outbox.application.ports import IncomingRecord, Persisted
from chat_outbox.domain import ChatMessage, Envelope
from tests.unit.outbox_rows import add_rows_for

pytestmark = pytest.mark.unit
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def envelope(outbox_id: int) -> bytes:
    chat = ChatMessage.create(user_id=1, conversation_id="c", role="user", message="hi")
    event_id = f"00000000-0000-0000-0000-{outbox_id:012d}"
    return Envelope(event_id, "chat_history_persist", 1, T0, "c", outbox_id, chat).encode()


@attrs.define
class Journal:
    """What happened, in order: fetches, write starts and ends, acknowledgements."""

    events: list[str] = attrs.Factory(list)


@attrs.define
class JournalingSource:
    bus: InMemoryBus
    journal: Journal

    async def fetch(self, max_records: int, timeout: float) -> list[IncomingRecord]:
        records = await self.bus.fetch(max_records, timeout)
        if records:
            self.journal.events.append(f"fetch {records[0].offset}")
        return records

    async def acknowledge(self, records: Sequence[IncomingRecord]) -> None:
        self.journal.events.append(f"ack {records[0].offset}")
        await self.bus.acknowledge(records)

    async def dead_letter(self, record: IncomingRecord, reason: str) -> None:
        await self.bus.dead_letter(record, reason)


class Crash(BaseException):
    """The process dying in the middle of a write (nothing catches it)."""


@attrs.frozen
class SlowWriter(UnitOfWorkHistoryWriter):
    """Writes take a while (the database's round trips), and say when they start and end."""

    journal: Journal = attrs.field(factory=Journal)
    fail_on: int | None = None

    async def persist(self, envelopes: Sequence[Envelope], at: datetime) -> Persisted:
        first = envelopes[0].outbox_id
        self.journal.events.append(f"write {first}")
        await asyncio.sleep(0.01)
        if first == self.fail_on:
            raise Crash
        persisted = await super().persist(envelopes, at)
        self.journal.events.append(f"commit {first}")
        return persisted


def consumer_of(batches: int, *, fail_on: int | None = None) -> tuple[Consumer, InMemoryBus]:
    bus = InMemoryBus()
    store = InMemoryStore()
    for outbox_id in range(1, batches * 2 + 1):
        bus.produce_raw(envelope(outbox_id), b"c")
        add_rows_for(store, envelope(outbox_id))
    journal = Journal()
    writer = SlowWriter(lambda: InMemoryUnitOfWork(store), journal, fail_on)
    consumer = Consumer(JournalingSource(bus, journal), writer, ManualClock(T0), batch_size=2)
    return consumer, bus


async def test_the_next_batch_is_fetched_during_a_write_and_acks_follow_commits() -> None:
    """Batch 2 is fetched before batch 1's write ends; every ack comes after its own commit
    and before the next write starts."""
    consumer, bus = consumer_of(3)
    report = await run_consumer(consumer, idle_exit=0.05, poll_timeout=0.01)
    assert report.persisted == 6
    events = consumer.writer.journal.events  # type: ignore[attr-defined]
    assert events.index("fetch 2") < events.index("commit 1")
    writes = [event for event in events if not event.startswith("fetch")]
    assert writes == [
        "write 1", "commit 1", "ack 0", "write 3", "commit 3", "ack 2",
        "write 5", "commit 5", "ack 4",
    ]  # fmt: skip
    assert bus.acknowledged == 6


async def test_a_batch_fetched_during_a_failed_write_is_not_acknowledged() -> None:
    """When a write fails, the batch fetched meanwhile is dropped unacknowledged: both are
    delivered again to whoever consumes next."""
    consumer, bus = consumer_of(3, fail_on=1)
    with capture_logs() as logs, pytest.raises(Crash):
        await run_consumer(consumer, idle_exit=0.05, poll_timeout=0.01)
    assert bus.acknowledged == 0
    dropped = [line for line in logs if line["event"] == "consumer_batches_unacknowledged"]
    assert [line["batches"] for line in dropped] == [2]  # the failed batch and the next
    bus.crash_consumer()
    assert [record.offset for record in await bus.fetch(10, 0.01)] == list(range(6))


async def test_a_batch_received_when_the_stop_comes_is_still_written() -> None:
    """Stopping during a write finishes it and the batch fetched meanwhile, and fetches no
    more: nothing received is left unacknowledged."""
    consumer, bus = consumer_of(3)

    async def stop_soon() -> None:
        await asyncio.sleep(0.005)
        consumer.stopping.set()

    stopper = asyncio.ensure_future(stop_soon())
    report = await run_consumer(consumer, poll_timeout=0.01)
    await stopper
    assert report.persisted == 4
    assert bus.acknowledged == 4


@attrs.frozen
class FirstWriteSlowest(SlowWriter):
    """The first batch's write takes longest, so later writes commit before it."""

    async def persist(self, envelopes: Sequence[Envelope], at: datetime) -> Persisted:
        if envelopes[0].outbox_id == 1:
            await asyncio.sleep(0.05)
        return await super().persist(envelopes, at)


async def test_writes_overlap_but_acks_keep_the_order_batches_came_in() -> None:
    """With two writes at once, batch 2 commits before batch 1, yet batch 1 is acknowledged
    first: no acknowledgement ever covers a record whose write has not committed."""
    consumer, bus = consumer_of(3)
    assert isinstance(consumer.writer, SlowWriter)
    journal = consumer.writer.journal
    writer = FirstWriteSlowest(consumer.writer.uow, journal)
    consumer = attrs.evolve(consumer, writer=writer, writes=2)
    report = await run_consumer(consumer, idle_exit=0.05, poll_timeout=0.01)
    assert report.persisted == 6
    events = journal.events
    assert events.index("commit 3") < events.index("commit 1")
    acks = [event for event in events if event.startswith("ack")]
    assert acks == ["ack 0", "ack 2", "ack 4"]
    assert events.index("ack 2") > events.index("commit 1")
    assert bus.acknowledged == 6
