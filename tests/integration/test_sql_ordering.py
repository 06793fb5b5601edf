"""Invariant 6 on real databases: one conversation's publish failures keep its order and
delay no other conversation."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from datetime import timedelta

import attrs
import pytest

from adapters.clock import ManualClock, SystemClock
from adapters.sql import SqlUnitOfWorkFactory
from application.ports import MessageBus, OutgoingRecord, PublishResult
from application.relay_loop import run_relay
from application.relaying import Relay
from domain import Envelope, PublishFailure, RetryPolicy
from tests.integration.test_sql_relays import record_many

pytestmark = pytest.mark.integration


@attrs.define
class FlakyConversationBus(MessageBus):
    """Refuses the first `failures` attempts for one conversation; numbers what it accepts."""

    flaky: str
    failures: int
    sequence: itertools.count[int] = attrs.field(factory=itertools.count)
    accepted: list[tuple[int, str, int]] = attrs.field(factory=list)
    refused: int = 0

    async def publish(self, records: Sequence[OutgoingRecord]) -> list[PublishResult]:
        results: list[PublishResult] = []
        for record in records:
            if record.key == self.flaky and self.refused < self.failures:
                self.refused += 1
                results.append(PublishFailure("injected: broker said not now"))
                continue
            outbox_id = Envelope.decode(record.value).outbox_id
            self.accepted.append((next(self.sequence), record.key, outbox_id))
            results.append(None)
        return results


async def test_failures_in_one_conversation_keep_its_order_and_delay_no_other(
    uow: SqlUnitOfWorkFactory,
) -> None:
    """c0's first message fails three times: c0 still goes out in recording order, and every
    other conversation's messages were all published before c0's first one got through."""
    await record_many(uow, 50, 10)  # c0..c9, five messages each, interleaved
    bus = FlakyConversationBus(flaky="c0", failures=3)
    clock = ManualClock(SystemClock().now())  # c0's retry is due only when we say so
    relay = Relay(uow, bus, clock, RetryPolicy(rand=lambda: 1.0))
    for _ in range(10):
        await run_relay(relay, asyncio.Event(), once=True)
        if len(bus.accepted) == 50:
            break
        clock.advance(timedelta(minutes=10))
    assert bus.refused == 3
    assert len(bus.accepted) == 50
    flaky = [(seq, outbox_id) for seq, key, outbox_id in bus.accepted if key == "c0"]
    others = [seq for seq, key, _ in bus.accepted if key != "c0"]
    assert [outbox_id for _, outbox_id in flaky] == sorted(outbox_id for _, outbox_id in flaky)
    assert max(others) < min(seq for seq, _ in flaky)
