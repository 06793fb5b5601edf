"""The outbox journal on SQLite, PostgreSQL and MariaDB: failed attempts, deaths, requeues
and sweeps are journalled in the transition's own transaction, acks and consumes are not,
a purge takes a row's journal with it, and the in-memory fake keeps the same journal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import attrs
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.clock import ManualClock, uuid4_event_id
from chat_outbox.adapters.memory import InMemoryBus, InMemoryStore, InMemoryUnitOfWork
from chat_outbox.adapters.memory.claims import InMemoryLeasedClaims
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.adapters.sql.claims import LeasedClaims
from chat_outbox.adapters.sql.insights import SqlInsights
from chat_outbox.adapters.sql.tables import outbox_attempts
from chat_outbox.application.consume.consuming import Consumer
from chat_outbox.application.consume.persisting import UnitOfWorkHistoryWriter
from chat_outbox.application.operate import operations
from chat_outbox.application.ports import DeadSelector, OutboxClaims, UnitOfWorkFactory
from chat_outbox.application.record.recording import RecordChatMessage
from chat_outbox.application.relay.relaying import Relay
from chat_outbox.domain import (
    ChatMessage,
    OutboxEvent,
    OutboxStatus,
    PublishFailure,
    RetryPolicy,
    Role,
)
from chat_outbox.domain.journal import JournalEntry

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
SECOND = timedelta(seconds=1)
LEASE = timedelta(seconds=60)
FAILED, DEAD = OutboxEvent.PUBLISH_FAILED, OutboxEvent.PUBLISH_FAILED_FATALLY
REQUEUED, SWEPT = OutboxEvent.REQUEUED, OutboxEvent.SWEPT


@attrs.define
class System:
    """Recording, relaying, consuming and operating on one store, on a manual clock; one
    relay's claims for every round, as in a relay process."""

    units: UnitOfWorkFactory
    claims: OutboxClaims
    read: Callable[[int], Awaitable[list[JournalEntry]]]
    clock: ManualClock
    bus: InMemoryBus = attrs.field(factory=InMemoryBus)

    async def record(self, conversation: str = "c-1") -> int:
        record = RecordChatMessage(self.units, self.clock, uuid4_event_id, "chat")
        return (await record(ChatMessage(7, conversation, Role.USER, "hi"))).id

    async def relay(self, error: str | None = None, fatal: bool = False) -> None:
        """One relay round a second after the last, failing with `error` when given."""
        self.clock.advance(SECOND)
        failure = None if error is None else PublishFailure(error, retryable=not fatal)
        self.bus.fail_with = None if failure is None else (lambda _: failure)
        # Backoff of half its ceiling: the next round, a second on, finds the row due.
        policy = RetryPolicy(rand=lambda: 0.5)
        await Relay(self.claims, self.bus, self.clock, policy).relay_due()

    async def consume(self) -> None:
        self.clock.advance(SECOND)
        await Consumer(self.bus, UnitOfWorkHistoryWriter(self.units), self.clock).consume_batch(0)

    async def journal(self, outbox_id: int) -> list[tuple[OutboxEvent, int, str | None]]:
        return [(e.event, e.attempt, e.error) for e in await self.read(outbox_id)]


def sql_system(uow: SqlUnitOfWorkFactory) -> System:
    clock = ManualClock(T0)
    claims = LeasedClaims(uow, clock, LEASE)
    return System(uow, claims, SqlInsights(uow.engine).journal, clock)


def memory_system() -> System:
    store = InMemoryStore()

    def units() -> InMemoryUnitOfWork:
        return InMemoryUnitOfWork(store)

    async def read(outbox_id: int) -> list[JournalEntry]:
        return [entry for entry in store.journal if entry.outbox_id == outbox_id]

    return System(units, InMemoryLeasedClaims(units, LEASE), read, ManualClock(T0))


async def journal_lines(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        lines = await connection.scalar(select(func.count()).select_from(outbox_attempts))
    return int(lines or 0)


async def test_each_failed_attempt_is_journalled_with_its_own_error_in_order(
    uow: SqlUnitOfWorkFactory,
) -> None:
    """A message that fails twice with different errors and is then published has both
    failures in its journal, in order, each with its attempt number, time and next try."""
    system = sql_system(uow)
    outbox_id = await system.record()
    await system.relay("KafkaTimeoutError: no ack in 30 s")
    await system.relay("NotLeaderForPartitionError")
    await system.relay()

    entries = await system.read(outbox_id)

    assert [(e.event, e.attempt, e.error) for e in entries] == [
        (FAILED, 1, "KafkaTimeoutError: no ack in 30 s"),
        (FAILED, 2, "NotLeaderForPartitionError"),
    ]
    assert [e.at for e in entries] == [T0 + SECOND, T0 + 2 * SECOND]
    assert all(e.next_retry_at is not None and e.next_retry_at > e.at for e in entries)
    async with uow() as unit:
        row = await unit.outbox.get(outbox_id)
    assert row is not None
    assert row.published_at == T0 + 3 * SECOND


async def test_a_published_and_consumed_message_writes_no_journal_line(
    uow: SqlUnitOfWorkFactory,
) -> None:
    """Publish acks and consumed marks, the usual path, leave the journal table empty."""
    system = sql_system(uow)
    for conversation in ("c-1", "c-2", "c-3"):
        await system.record(conversation)
    await system.relay()
    await system.consume()
    assert (await operations.outbox_stats(uow)).counts[OutboxStatus.CONSUMED] == 3
    assert await journal_lines(uow.engine) == 0


async def test_a_failure_the_guard_refuses_writes_no_journal_line(
    uow: SqlUnitOfWorkFactory,
) -> None:
    """A stale failure outcome for a row consumed meanwhile changes nothing, journal included."""
    system = sql_system(uow)
    outbox_id = await system.record()
    async with uow() as unit:
        stale = await unit.outbox.get(outbox_id)
        assert stale is not None
        fresh = attrs.evolve(stale)
        consumed = fresh.mark_consumed(T0 + SECOND)
        assert consumed is not None
        assert await unit.outbox.apply([consumed]) == 1
        failure = stale.record_publish_failure(PublishFailure("late"), T0, RetryPolicy())
        assert failure is not None
        assert await unit.outbox.apply([failure]) == 0
        await unit.commit()
    assert await system.journal(outbox_id) == []


@pytest.mark.parametrize("fatal", [False, True], ids=["retry", "death"])
async def test_a_transition_written_twice_is_journalled_once(
    uow: SqlUnitOfWorkFactory, fatal: bool
) -> None:
    """Outcomes written again after a lost commit change the row once (a death) or to the
    same values (a retry), and leave one journal line either way."""
    system = sql_system(uow)
    outbox_id = await system.record()
    async with uow() as unit:
        row = await unit.outbox.get(outbox_id)
    assert row is not None
    failure = PublishFailure("lost commit", retryable=not fatal)
    transition = row.record_publish_failure(failure, T0, RetryPolicy())
    assert transition is not None
    for _ in range(2):
        async with uow() as unit:
            await unit.outbox.apply([transition])
            await unit.commit()
    assert await system.journal(outbox_id) == [(transition.event, 1, transition.last_error)]


async def test_a_death_and_an_operators_requeue_are_journalled(
    uow: SqlUnitOfWorkFactory,
) -> None:
    """A fatal failure journals the death with its error; the requeue journals the reset."""
    system = sql_system(uow)
    outbox_id = await system.record()
    await system.relay("MessageSizeTooLarge", fatal=True)
    system.clock.advance(SECOND)
    assert await operations.requeue_dead(uow, system.clock, DeadSelector(outbox_id)) == 1

    entries = await system.read(outbox_id)

    assert [(e.event, e.attempt, e.error) for e in entries] == [
        (DEAD, 1, "MessageSizeTooLarge"),
        (REQUEUED, 0, None),
    ]
    assert entries[0].next_retry_at is None  # a dead row is due for nothing
    assert entries[1].at == entries[1].next_retry_at == T0 + 2 * SECOND


async def test_a_sweep_is_journalled_with_the_rows_retry_count(
    uow: SqlUnitOfWorkFactory,
) -> None:
    """A sweep leaves the retry count as it was, and its journal line reads it off the row."""
    system = sql_system(uow)
    outbox_id = await system.record()
    await system.relay("transient")
    await system.relay()
    system.clock.advance(10 * SECOND)
    swept = await operations.sweep_stale_published(uow, system.clock, system.clock.now())
    assert swept == 1
    assert await system.journal(outbox_id) == [(FAILED, 1, "transient"), (SWEPT, 1, None)]


async def test_purging_consumed_rows_deletes_their_journal_and_keeps_the_others(
    uow: SqlUnitOfWorkFactory,
) -> None:
    system = sql_system(uow)
    purged = await system.record("c-1")
    await system.relay("first try failed")
    await system.relay()
    await system.consume()
    kept = await system.record("c-2")
    await system.relay("rejected", fatal=True)

    assert await operations.purge_consumed(uow, system.clock.now()) == 1

    assert await system.journal(purged) == []
    assert await system.journal(kept) == [(DEAD, 1, "rejected")]
    assert await journal_lines(uow.engine) == 1


async def scenario(system: System) -> list[list[tuple[OutboxEvent, int, str | None]]]:
    """Failures, a publish and a consume, a death, a requeue, a sweep and a purge; the two
    rows' journals before and after the purge."""
    first = await system.record("c-1")
    await system.relay("timeout")
    await system.relay("timeout again")
    await system.relay()
    await system.consume()
    second = await system.record("c-2")
    await system.relay("refused", fatal=True)
    await operations.requeue_dead(system.units, system.clock, DeadSelector(second))
    await system.relay("flaky")
    await system.relay()
    system.clock.advance(10 * SECOND)
    await operations.sweep_stale_published(system.units, system.clock, system.clock.now())
    before = [await system.journal(first), await system.journal(second)]
    await operations.purge_consumed(system.units, system.clock.now(), batch=1)
    return [*before, await system.journal(first), await system.journal(second)]


async def test_the_memory_fake_keeps_the_journal_the_database_keeps(
    uow: SqlUnitOfWorkFactory,
) -> None:
    """The same story on the fake and on the database leaves the same journal lines."""
    on_sql = await scenario(sql_system(uow))
    on_fake = await scenario(memory_system())
    assert on_fake == on_sql
    assert on_sql == [
        [(FAILED, 1, "timeout"), (FAILED, 2, "timeout again")],
        [(DEAD, 1, "refused"), (REQUEUED, 0, None), (FAILED, 1, "flaky"), (SWEPT, 1, None)],
        [],
        on_sql[1],
    ]
