"""A locking relay claims each conversation's run of due messages and publishes the round
in one call; the bus stops a conversation at its failure, so its later messages stay
pending behind it (deferred) while the other conversations go on."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import pytest

from chat_outbox.adapters.memory import InMemoryBus
from chat_outbox.adapters.memory.bus import FailureInjector
from chat_outbox.application.ports import OutgoingRecord, PublishResult
from chat_outbox.domain import Envelope, OutboxStatus, PublishFailure
from tests.unit.conftest import Harness

pytestmark = pytest.mark.unit


@attrs.define
class WaveBus(InMemoryBus):
    """Remembers which outbox ids each publish call carried."""

    calls: list[list[int]] = attrs.field(factory=list)

    async def publish(self, records: Sequence[OutgoingRecord]) -> list[PublishResult]:
        self.calls.append([Envelope.decode(record.value).outbox_id for record in records])
        return await super().publish(records)


def failing_ids(*outbox_ids: int, fatal: bool = False) -> FailureInjector:
    def fail(record: OutgoingRecord) -> PublishFailure | None:
        if Envelope.decode(record.value).outbox_id not in outbox_ids:
            return None
        return PublishFailure.fatal("injected") if fatal else PublishFailure("injected")

    return fail


@pytest.fixture
def bus(harness: Harness) -> WaveBus:
    harness.bus = WaveBus()
    return harness.bus


async def test_a_locking_round_publishes_each_conversations_run_in_one_call(
    harness: Harness, bus: WaveBus
) -> None:
    a0, b0, a1, a2, b1 = [await harness.record(c, c) for c in ("a", "b", "a", "a", "b")]
    report = await harness.relay(lease=None).relay_due()
    assert (report.claimed, report.published, report.deferred) == (5, 5, 0)
    assert bus.calls == [[a0.id, b0.id, a1.id, a2.id, b1.id]]
    assert harness.published_event_ids() == [m.event_id for m in (a0, b0, a1, a2, b1)]


async def test_a_leasing_round_claims_heads_only_and_publishes_once(
    harness: Harness, bus: WaveBus
) -> None:
    a0, b0, _, _ = [await harness.record(c, c) for c in ("a", "b", "a", "b")]
    report = await harness.relay().relay_due()
    assert report.claimed == 2
    assert bus.calls == [[a0.id, b0.id]]


async def test_a_failed_message_defers_its_conversations_later_messages_only(
    harness: Harness, bus: WaveBus
) -> None:
    """a1 fails: a2, claimed behind it, is not sent and stays untouched; b goes on."""
    a0, a1, b0, a2, b1 = [await harness.record(c, c) for c in ("a", "a", "b", "a", "b")]
    bus.fail_with = failing_ids(a1.id)
    report = await harness.relay(lease=None).relay_due()
    assert (report.published, report.retried, report.deferred) == (3, 1, 1)
    assert bus.calls == [[a0.id, a1.id, b0.id, a2.id, b1.id]]
    assert harness.status(a1.id) is OutboxStatus.PENDING
    assert harness.row(a1.id).retry_count == 1
    assert harness.row(a2.id) == a2  # untouched: still pending, due, never tried
    assert harness.published_event_ids() == [a0.event_id, b0.event_id, b1.event_id]


async def test_a_message_gone_dead_mid_run_holds_its_conversations_later_messages(
    harness: Harness, bus: WaveBus
) -> None:
    a0, a1, a2 = [await harness.record("a", f"m{n}") for n in range(3)]
    bus.fail_with = failing_ids(a0.id, fatal=True)
    report = await harness.relay(lease=None).relay_due()
    assert (report.dead, report.deferred) == (1, 2)
    assert bus.calls == [[a0.id, a1.id, a2.id]]
    assert harness.bus.log == []
    assert [harness.status(row.id) for row in (a0, a1, a2)] == [
        OutboxStatus.DEAD,
        OutboxStatus.PENDING,
        OutboxStatus.PENDING,
    ]
    assert (await harness.relay(lease=None).relay_due()).claimed == 0  # held behind a0


async def test_a_run_is_claimed_only_up_to_a_message_waiting_for_its_retry(
    harness: Harness, bus: WaveBus
) -> None:
    """a0 waits for its retry: a1 and a2 are not claimed, b is."""
    a0, _, _ = [await harness.record("a", f"m{n}") for n in range(3)]
    b0 = await harness.record("b", "b0")
    bus.fail_with = failing_ids(a0.id)
    await harness.relay(lease=None).relay_due()
    bus.fail_with = None
    b1 = await harness.record("b", "b1")
    report = await harness.relay(lease=None).relay_due()
    assert report.claimed == 1
    assert bus.calls[-1] == [b1.id]
    assert harness.status(b0.id) is OutboxStatus.PUBLISHED


async def test_a_row_that_cannot_be_encoded_stops_its_conversation_before_the_call(
    harness: Harness, bus: WaveBus
) -> None:
    """a0's payload is broken: it goes dead, a1 is never sent, b goes on in the same call."""
    a0, a1, b0 = [await harness.record(c, c) for c in ("a", "a", "b")]
    harness.store.outbox[a0.id] = attrs.evolve(a0, payload="{broken")
    report = await harness.relay(lease=None).relay_due()
    assert (report.dead, report.published, report.deferred) == (1, 1, 1)
    assert bus.calls == [[b0.id]]
    assert harness.row(a1.id) == a1


async def test_a_conversation_over_two_topics_stops_at_its_failure_in_either(
    harness: Harness, bus: WaveBus
) -> None:
    """The bus stops a key in every topic: a1, on another topic, waits behind a0."""
    a0 = await harness.record("a", "a0")
    a1 = await harness.record("a", "a1")
    harness.store.outbox[a1.id] = attrs.evolve(a1, topic="chat.other")
    bus.fail_with = failing_ids(a0.id)
    report = await harness.relay(lease=None).relay_due()
    assert (report.retried, report.deferred) == (1, 1)
    assert harness.bus.log == []
    assert harness.status(a1.id) is OutboxStatus.PENDING
