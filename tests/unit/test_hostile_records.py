"""Hostile records on the consumer's side: keys, forged duplicates, and bounded batches."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import attrs
import pytest

from chat_outbox.application.consume.persisting import UnitOfWorkHistoryWriter
from chat_outbox.application.operate.operations import read_history
from chat_outbox.application.ports import Persisted
from chat_outbox.application.relay.loop import run_relay
from chat_outbox.domain import ChatMessage, Envelope
from tests.unit.conftest import Harness
from tests.unit.outbox_rows import add_rows_for

pytestmark = pytest.mark.unit
TIMEOUT = 0.0


async def relay_all(harness: Harness) -> None:
    await run_relay(harness.relay(), asyncio.Event(), once=True)


async def one_envelope(harness: Harness, text: str = "hello") -> bytes:
    return Envelope.for_outbox_message(await harness.record("conv-1", text)).encode()


def forged(envelope: bytes, message: str) -> bytes:
    """The same envelope, event id included, carrying another message text."""
    document = json.loads(envelope)
    document["payload"]["message"] = message
    return json.dumps(document).encode()


async def test_a_record_without_a_key_is_dead_lettered(harness: Harness) -> None:
    """A valid envelope in a record with no key did not come from our relay: DLQ, reason."""
    harness.bus.produce_raw(await one_envelope(harness), key=None)

    report = await harness.consumer().consume_batch(TIMEOUT)

    assert report.dead_lettered == 1
    assert harness.bus.dead_letters[0][1] == "record has no key (expected the conversation id)"
    assert harness.store.history == {}


async def test_a_record_keyed_to_another_conversation_is_dead_lettered(harness: Harness) -> None:
    """A record key that is not the envelope's conversation id is refused with a reason."""
    harness.bus.produce_raw(await one_envelope(harness), key=b"conv-2")

    await harness.consumer().consume_batch(TIMEOUT)

    reason = harness.bus.dead_letters[0][1]
    assert reason == "record key does not match the envelope's conversation id"


async def test_a_forged_duplicate_of_a_persisted_event_is_dead_lettered(harness: Harness) -> None:
    """Same event id, other payload, after the original was persisted: the original stays,
    the forgery goes to the DLQ naming the conflict, and nothing is silently dropped."""
    await harness.record("conv-1", "the original")
    await relay_all(harness)
    await harness.consumer().consume_batch(TIMEOUT)
    harness.bus.produce_raw(forged(harness.bus.log[0].value or b"", "a forgery"), b"conv-1")

    report = await harness.consumer().consume_batch(TIMEOUT)

    assert (report.dead_lettered, report.persisted, report.duplicates) == (1, 0, 0)
    assert "with a different payload than the one in chat history" in harness.bus.dead_letters[0][1]
    assert [e.message for e in await read_history(harness.uow, "conv-1")] == ["the original"]


async def test_a_forged_duplicate_within_one_batch_is_dead_lettered(harness: Harness) -> None:
    """Two records with one event id and different payloads in a batch: the first is
    persisted, the second is dead-lettered (the batch no longer keeps one silently)."""
    envelope = await one_envelope(harness, "the original")
    harness.bus.produce_raw(envelope, b"conv-1")
    harness.bus.produce_raw(forged(envelope, "a forgery"), b"conv-1")

    report = await harness.consumer().consume_batch(TIMEOUT)

    assert (report.persisted, report.dead_lettered) == (1, 1)
    assert "than the one earlier in the batch" in harness.bus.dead_letters[0][1]
    assert [e.message for e in await read_history(harness.uow, "conv-1")] == ["the original"]


async def test_an_identical_redelivery_is_a_duplicate_not_a_conflict(harness: Harness) -> None:
    """A byte-identical record delivered again is absorbed, never dead-lettered."""
    envelope = await one_envelope(harness)
    harness.bus.produce_raw(envelope, b"conv-1")
    await harness.consumer().consume_batch(TIMEOUT)
    harness.bus.produce_raw(envelope, b"conv-1")

    report = await harness.consumer().consume_batch(TIMEOUT)

    assert (report.duplicates, report.dead_lettered) == (1, 0)
    assert harness.bus.dead_letters == []


@attrs.frozen
class MeasuringWriter(UnitOfWorkHistoryWriter):
    """A history writer that remembers how many envelopes each call was handed."""

    sizes: list[int] = attrs.field(factory=list)

    async def persist(self, envelopes: Sequence[Envelope], at: datetime) -> Persisted:
        self.sizes.append(len(envelopes))
        return await super().persist(envelopes, at)


async def test_a_burst_reaches_the_handler_in_batches_no_larger_than_the_bound(
    harness: Harness,
) -> None:
    """2,000 records waiting at once are persisted 64 at most per transaction."""
    for n in range(1, 2001):
        chat = ChatMessage.create(user_id=1, conversation_id="c", role="user", message=f"#{n}")
        at = datetime(2026, 1, 1, tzinfo=UTC)
        burst = Envelope(str(uuid.UUID(int=n)), "chat_history_persist", 1, at, "c", n, chat)
        harness.bus.produce_raw(burst.encode(), b"c")
        add_rows_for(harness.store, burst.encode())
    writer = MeasuringWriter(harness.uow)
    consumer = attrs.evolve(harness.consumer(batch_size=64), writer=writer)

    while (await consumer.consume_batch(TIMEOUT)).received:
        pass

    assert max(writer.sizes) == 64
    assert sum(writer.sizes) == 2000
    assert len(harness.store.history) == 2000
