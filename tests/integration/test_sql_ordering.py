"""Invariant 6 on real databases: one conversation's publish failures keep its order and
delay no other conversation."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from datetime import timedelta

import attrs
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.clock import ManualClock, SystemClock
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.application.ports import MessageBus, OutgoingRecord, PublishResult
from chat_outbox.application.relay.loop import run_relay
from chat_outbox.domain import Envelope, PublishFailure, RetryPolicy
from tests.integration.databases import truncate
from tests.integration.relays import leasing_relay, locking_relay
from tests.integration.test_sql_relays import record_many

pytestmark = pytest.mark.integration

LEASE = timedelta(seconds=60)


@attrs.define
class FlakyConversationBus(MessageBus):
    """Refuses `failures` attempts for one conversation after accepting its first
    `accept_first` records; numbers what it accepts. As the bus port asks, a refused
    record stops its key for the rest of the call."""

    flaky: str
    failures: int
    accept_first: int = 0
    sequence: itertools.count[int] = attrs.field(factory=itertools.count)
    accepted: list[tuple[int, str, int]] = attrs.field(factory=list)
    refused: int = 0

    async def publish(self, records: Sequence[OutgoingRecord]) -> list[PublishResult]:
        results: list[PublishResult] = []
        stopped: set[str] = set()
        for record in records:
            if record.key in stopped:
                results.append(PublishFailure("not sent: an earlier record failed"))
                continue
            flaky = record.key == self.flaky
            passed = sum(1 for _, key, _ in self.accepted if key == self.flaky)
            if flaky and passed >= self.accept_first and self.refused < self.failures:
                self.refused += 1
                stopped.add(record.key)
                results.append(PublishFailure("injected: broker said not now"))
                continue
            outbox_id = Envelope.decode(record.value).outbox_id
            self.accepted.append((next(self.sequence), record.key, outbox_id))
            results.append(None)
        return results


def claim_modes(engine: AsyncEngine) -> list[timedelta | None]:
    """Leases everywhere; row locks (runs per conversation) where the database has them."""
    return [LEASE] if engine.dialect.name == "sqlite" else [LEASE, None]


async def test_failures_in_one_conversation_keep_its_order_and_delay_no_other(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """c0's first message fails three times: c0 still goes out in recording order, and every
    other conversation's messages were all published before c0's first one got through."""
    for lease in claim_modes(engine):
        await truncate(engine)
        await publish_with_a_flaky_conversation(uow, lease)


async def test_a_failure_mid_run_keeps_the_conversations_order(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """c0's second message fails (its first got through in the same round): c0 still goes
    out in recording order."""
    for lease in claim_modes(engine):
        await truncate(engine)
        await publish_with_a_flaky_conversation(uow, lease, accept_first=1)


async def publish_with_a_flaky_conversation(
    uow: SqlUnitOfWorkFactory, lease: timedelta | None, accept_first: int = 0
) -> None:
    await record_many(uow, 50, 10)  # c0..c9, five messages each, interleaved
    bus = FlakyConversationBus(flaky="c0", failures=3, accept_first=accept_first)
    clock = ManualClock(SystemClock().now())  # c0's retry is due only when we say so
    policy = RetryPolicy(rand=lambda: 1.0)
    if lease is None:
        relay = locking_relay(uow, bus, clock, policy)
    else:
        relay = leasing_relay(uow, bus, clock, policy, lease=lease)
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
    assert max(others) < min(seq for seq, _ in flaky[accept_first:])
