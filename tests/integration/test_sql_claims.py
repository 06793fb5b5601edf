"""The SQL claim strategies' own promises: a leased relay's one commit per batch, rows
claimed ahead handed back on stop, and outcomes a failed settle could not write."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.clock import ManualClock, SystemClock
from chat_outbox.adapters.memory import InMemoryBus
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.adapters.sql.claims import LeasedClaims, lease_heads
from chat_outbox.adapters.sql.uow import SqlUnitOfWork
from chat_outbox.application.errors import StoreUnavailable
from chat_outbox.application.ports import OutgoingRecord, PublishResult
from chat_outbox.application.relay.relaying import Relay
from chat_outbox.domain import Envelope, OutboxStatus
from tests.integration.relays import LEASE
from tests.integration.test_sql_outbox import outbox_row
from tests.integration.test_sql_relays import record_many

pytestmark = pytest.mark.integration


@contextmanager
def counted_commits(engine: AsyncEngine) -> Iterator[list[int]]:
    """A list that grows by one at every commit on `engine` inside the block."""
    commits: list[int] = []

    def on_commit(_conn: Any) -> None:
        commits.append(1)

    event.listen(engine.sync_engine, "commit", on_commit)
    try:
        yield commits
    finally:
        event.remove(engine.sync_engine, "commit", on_commit)


async def test_a_leasing_relay_commits_once_per_batch(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """Each settle writes its batch's outcomes and claims the next batch in one
    transaction: n full rounds cost n commits, plus the first claim."""
    await record_many(uow, 4, 1)  # one conversation: one head per round, a full batch of 1
    clock = SystemClock()
    relay = Relay(LeasedClaims(uow, clock, LEASE), InMemoryBus(), clock, batch_size=1)
    with counted_commits(engine) as commits:
        for _ in range(4):
            assert (await relay.relay_due()).published == 1
    assert len(commits) == 5


async def test_stopping_hands_back_the_rows_claimed_ahead(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """The settle of c0's first message claimed its second; stopping makes it due again at
    once, so another relay publishes it without waiting out the lease."""
    await record_many(uow, 2, 1)
    clock = ManualClock(SystemClock().now())
    first = Relay(LeasedClaims(uow, clock, LEASE), InMemoryBus(), clock, batch_size=1)
    assert (await first.relay_due()).published == 1
    await first.stop()
    bus = InMemoryBus()
    other = Relay(LeasedClaims(uow, clock, LEASE), bus, clock)
    assert (await other.relay_due()).published == 1
    assert len(bus.log) == 1


async def test_after_a_trickles_batch_nothing_is_claimed_ahead(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """A batch under a quarter full leaves its conversation's next row unleased: the
    paced next round claims it right before publishing it."""
    await record_many(uow, 2, 1)
    clock = SystemClock()
    relay = Relay(LeasedClaims(uow, clock, LEASE), InMemoryBus(), clock, batch_size=8)
    assert (await relay.relay_due()).published == 1
    async with uow() as unit:
        [second] = await lease_heads(unit.connection, clock.now(), 8, LEASE)
    assert (await outbox_row(engine, second.id))["status"] == OutboxStatus.PENDING.value


class RefusingCommit(SqlUnitOfWork):
    """A unit of work whose commit is lost with the connection, once per `refusals`."""

    refusals: list[int]

    async def commit(self) -> None:
        if self.refusals:
            self.refusals.pop()
            raise StoreUnavailable("connection to the database was lost")
        await super().commit()


class RefusingCommits(SqlUnitOfWorkFactory):
    def __init__(self, engine: AsyncEngine, refusals: int) -> None:
        super().__init__(engine)
        self.refusals = [1] * refusals

    def __call__(self) -> SqlUnitOfWork:
        unit = RefusingCommit(self.engine)
        unit.refusals = self.refusals
        return unit


class ArmingBus(InMemoryBus):
    """Publishes, then makes the next commit of `commits` fail (the settle's)."""

    commits: RefusingCommits | None = None

    async def publish(self, records: Sequence[OutgoingRecord]) -> list[PublishResult]:
        if self.commits is not None:
            self.commits.refusals.append(1)
            self.commits = None
        return await super().publish(records)


async def test_outcomes_a_failed_settle_could_not_write_go_with_the_next_claim(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """The settle's commit is lost: the row is not published again, and the next round's
    claim writes its outcome."""
    await record_many(uow, 1, 1)
    clock = SystemClock()
    flaky = RefusingCommits(uow.engine, refusals=0)
    bus = ArmingBus()
    bus.commits = flaky
    relay = Relay(LeasedClaims(flaky, clock, LEASE), bus, clock)
    with pytest.raises(StoreUnavailable):
        await relay.relay_due()
    [sent] = bus.log
    assert sent.value is not None
    outbox_id = Envelope.decode(sent.value).outbox_id
    assert (await outbox_row(engine, outbox_id))["status"] == OutboxStatus.PENDING.value
    assert (await relay.relay_due()).claimed == 0
    assert (await outbox_row(engine, outbox_id))["status"] == OutboxStatus.PUBLISHED.value
    assert len(bus.log) == 1
