"""The SQL outbox repository on real databases: atomic recording, claiming, and stats."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.clock import ManualClock, uuid4_event_id
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.adapters.sql.claims import lease_heads, lock_runs
from chat_outbox.adapters.sql.tables import outbox_messages
from chat_outbox.adapters.sql.uow import SqlUnitOfWork
from chat_outbox.application.errors import DuplicateEvent
from chat_outbox.application.ports import OutboxStats
from chat_outbox.application.record.recording import record_chat_message
from chat_outbox.domain import ChatMessage, OutboxMessage, OutboxStatus, PublishFailure, RetryPolicy

pytestmark = pytest.mark.integration

TOPIC = "chat.messages"
LEASE = timedelta(seconds=60)
T0 = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)

business = MetaData()
orders = Table(
    "it_business_orders",
    business,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ref", String(36), nullable=False, unique=True),
)


class CrashBeforeCommit(Exception):
    """The business code failed after writing, before it committed."""


@pytest.fixture
async def orders_table(engine: AsyncEngine) -> Table:
    async with engine.begin() as connection:
        await connection.run_sync(business.create_all, checkfirst=True)
    return orders


def chat(conversation: str = "c-1", text: str = "hello") -> ChatMessage:
    return ChatMessage.create(user_id=7, conversation_id=conversation, role="user", message=text)


async def add(
    uow: SqlUnitOfWorkFactory, created_at: datetime, conversation: str = "c-1"
) -> OutboxMessage:
    async with uow() as unit:
        message = await record_chat_message(
            unit,
            chat(conversation),
            topic=TOPIC,
            clock=ManualClock(created_at),
            event_ids=uuid4_event_id,
        )
        await unit.commit()
    return message


async def claim(uow: SqlUnitOfWorkFactory, now: datetime, limit: int) -> list[OutboxMessage]:
    async with uow() as unit:
        claimed = await lease_heads(unit.connection, now, limit, LEASE)
        await unit.commit()
    return claimed


async def claim_with(
    unit: SqlUnitOfWork, now: datetime, lease: timedelta | None
) -> list[OutboxMessage]:
    """A leased claim, or a locked one when `lease` is None."""
    if lease is None:
        return await lock_runs(unit.connection, now, 10)
    return await lease_heads(unit.connection, now, 10, lease)


async def stats(uow: SqlUnitOfWorkFactory) -> OutboxStats:
    async with uow() as unit:
        return await unit.outbox.stats()


async def outbox_row(engine: AsyncEngine, outbox_id: int) -> dict[str, Any]:
    async with engine.connect() as connection:
        query = select(outbox_messages).where(outbox_messages.c.id == outbox_id)
        return dict((await connection.execute(query)).mappings().one())


async def count_where(engine: AsyncEngine, table: Table, column: str, value: str) -> int:
    async with engine.connect() as connection:
        query = select(func.count()).select_from(table).where(table.c[column] == value)
        return int(await connection.scalar(query) or 0)


async def place_order(uow: SqlUnitOfWorkFactory, ref: str, event_id: str, *, crash: bool) -> None:
    """A business write and its outbox row in one unit of work, as an application does it."""
    async with uow() as unit:
        await unit.connection.execute(insert(orders).values(ref=ref))
        await record_chat_message(
            unit, chat(), topic=TOPIC, clock=ManualClock(T0), event_ids=lambda: event_id
        )
        if crash:
            raise CrashBeforeCommit(ref)
        await unit.commit()


async def move(uow: SqlUnitOfWorkFactory, message: OutboxMessage, status: OutboxStatus) -> None:
    at = message.created_at
    if status is OutboxStatus.PUBLISHED:
        transition = message.mark_published(at)
    elif status is OutboxStatus.CONSUMED:
        transition = message.mark_consumed(at)
    else:
        transition = message.record_publish_failure(PublishFailure.fatal("x"), at, RetryPolicy())
    assert transition is not None
    async with uow() as unit:
        assert await unit.outbox.apply([transition]) == 1
        await unit.commit()


async def test_a_crash_before_commit_leaves_neither_the_business_row_nor_the_outbox_row(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory, orders_table: Table
) -> None:
    """Rolling back the unit of work discards the business write and the outbox row together."""
    ref, event_id = uuid4_event_id(), uuid4_event_id()
    with pytest.raises(CrashBeforeCommit):
        await place_order(uow, ref, event_id, crash=True)
    assert await count_where(engine, orders_table, "ref", ref) == 0
    assert await count_where(engine, outbox_messages, "event_id", event_id) == 0


async def test_a_committed_business_write_and_its_outbox_row_both_persist(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory, orders_table: Table
) -> None:
    """Committing the unit of work keeps the business row and the pending outbox row."""
    ref, event_id = uuid4_event_id(), uuid4_event_id()
    await place_order(uow, ref, event_id, crash=False)
    assert await count_where(engine, orders_table, "ref", ref) == 1
    assert await count_where(engine, outbox_messages, "event_id", event_id) == 1


async def test_a_lease_claim_returns_due_pending_rows_in_recording_order_up_to_the_limit(
    uow: SqlUnitOfWorkFactory,
) -> None:
    """Rows are claimed by id (recording order), whatever their next_retry_at, up to the limit."""
    recorded = [await add(uow, T0 + timedelta(seconds=s), f"c-{s}") for s in (5, 4, 3, 2, 1)]
    claimed = await claim(uow, T0 + timedelta(minutes=1), 3)
    assert [m.id for m in claimed] == [m.id for m in recorded][:3]


async def test_a_lease_claim_takes_only_the_head_of_each_conversation(
    uow: SqlUnitOfWorkFactory,
) -> None:
    """A claim never holds two messages of one conversation: only the earliest is taken."""
    first = await add(uow, T0, "talkative")
    await add(uow, T0, "talkative")
    other = await add(uow, T0, "quiet")
    claimed = await claim(uow, T0 + timedelta(minutes=1), 10)
    assert [m.id for m in claimed] == [first.id, other.id]


async def test_a_lease_claim_skips_a_conversation_held_back_by_an_earlier_row(
    uow: SqlUnitOfWorkFactory,
) -> None:
    """Invariant 6: rows after a dead or not-yet-due row of their conversation are not claimed,
    while other conversations' rows are."""
    dead_head = await add(uow, T0, "held-by-dead")
    await move(uow, dead_head, OutboxStatus.DEAD)
    behind_dead = await add(uow, T0, "held-by-dead")
    await add(uow, T0 + timedelta(hours=1), "held-by-retry")
    behind_retry = await add(uow, T0, "held-by-retry")
    free = await add(uow, T0, "free")
    claimed = {m.id for m in await claim(uow, T0 + timedelta(minutes=1), 10)}
    assert claimed == {free.id}
    assert not claimed & {behind_dead.id, behind_retry.id}


async def test_a_lease_claim_leases_rows_until_the_lease_ends(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """A claimed row's next_retry_at moves to now + lease, hiding it from claims until then."""
    recorded = await add(uow, T0)
    [claimed] = await claim(uow, T0, 10)
    assert (await outbox_row(engine, recorded.id))["next_retry_at"] == T0 + LEASE
    assert claimed.next_retry_at == T0 + LEASE
    assert await claim(uow, T0 + LEASE - timedelta(microseconds=1), 10) == []
    assert [m.id for m in await claim(uow, T0 + LEASE, 10)] == [recorded.id]


async def test_a_claimed_row_reads_back_whole_with_its_times_in_utc(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """A claim, leased or locked (where the database has row locks), maps every column,
    times timezone-aware in UTC to the microsecond, as a plain read of the row does (a
    swept row brings its published_at along)."""
    leases: list[timedelta | None] = [LEASE]
    if engine.dialect.name != "sqlite":
        leases.append(None)
    for index, lease in enumerate(leases):
        message = await add(uow, T0, conversation=f"conv-utc-{index}")
        await move(uow, message, OutboxStatus.PUBLISHED)
        swept = message.sweep(T0 + timedelta(seconds=1))
        async with uow() as unit:
            assert swept is not None
            assert await unit.outbox.apply([swept]) == 1
            await unit.commit()
        now = T0 + timedelta(minutes=1)
        async with uow() as unit:
            claimed = [m for m in await claim_with(unit, now, lease) if m.id == message.id]
            stored = await unit.outbox.get(message.id)
        assert stored is not None
        assert stored.published_at == T0
        expected = stored if lease is None else attrs.evolve(stored, next_retry_at=now + lease)
        assert claimed == [expected]
        assert claimed[0].created_at.tzinfo is UTC


async def test_a_lease_claim_skips_rows_whose_next_retry_at_is_in_the_future(
    uow: SqlUnitOfWorkFactory,
) -> None:
    """A pending row is not claimed before its next_retry_at."""
    due = await add(uow, T0)
    await add(uow, T0 + timedelta(hours=1))
    assert [m.id for m in await claim(uow, T0 + timedelta(minutes=59), 10)] == [due.id]


@pytest.mark.parametrize(
    "status", [OutboxStatus.PUBLISHED, OutboxStatus.CONSUMED, OutboxStatus.DEAD]
)
async def test_a_lease_claim_skips_rows_that_are_not_pending(
    uow: SqlUnitOfWorkFactory, status: OutboxStatus
) -> None:
    """Only pending rows are claimed, however long ago they were due."""
    await move(uow, await add(uow, T0), status)
    assert await claim(uow, T0 + timedelta(days=1), 10) == []


async def test_two_claims_in_concurrent_open_transactions_get_disjoint_rows(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """SKIP LOCKED lets a second claimer take other rows at once; SQLite makes it wait its turn.
    Either way the two claims never share a row."""
    recorded = {(await add(uow, T0 + timedelta(seconds=s), f"c-{s}")).id for s in range(6)}
    skip_locked = engine.dialect.name != "sqlite"
    async with uow() as first:
        mine = await lease_heads(first.connection, T0 + timedelta(minutes=1), 3, LEASE)
        second = asyncio.create_task(claim(uow, T0 + timedelta(minutes=1), 3))
        done, _ = await asyncio.wait({second}, timeout=10 if skip_locked else 0.3)
        finished_while_first_open = second in done
        await first.commit()
    theirs = await second
    assert finished_while_first_open is skip_locked
    assert {m.id for m in mine} | {m.id for m in theirs} == recorded
    assert not {m.id for m in mine} & {m.id for m in theirs}


async def test_stats_counts_rows_by_status(uow: SqlUnitOfWorkFactory) -> None:
    """Every status is counted, including zero counts, and dead is exposed on its own."""
    wanted = {
        OutboxStatus.PENDING: 3,
        OutboxStatus.PUBLISHED: 2,
        OutboxStatus.CONSUMED: 1,
        OutboxStatus.DEAD: 4,
    }
    for status, count in wanted.items():
        for _ in range(count):
            message = await add(uow, T0)
            if status is not OutboxStatus.PENDING:
                await move(uow, message, status)
    result = await stats(uow)
    assert result.counts == wanted
    assert result.dead == 4


async def test_stats_of_an_empty_outbox_reports_zero_counts_and_no_oldest_rows(
    uow: SqlUnitOfWorkFactory,
) -> None:
    """With no rows, every count is zero and there is no oldest pending or published row."""
    result = await stats(uow)
    assert result.counts == dict.fromkeys(OutboxStatus, 0)
    assert (result.oldest_pending_at, result.oldest_published_at) == (None, None)


async def test_stats_reports_the_oldest_pending_and_published_times_as_stored_in_utc(
    uow: SqlUnitOfWorkFactory,
) -> None:
    """Oldest times come back timezone-aware in UTC, equal to the stored instant to the µs."""
    india = timezone(timedelta(hours=5, minutes=30))
    oldest_pending = T0.astimezone(india)
    oldest_published = T0 - timedelta(days=1, microseconds=3)
    await add(uow, oldest_pending + timedelta(microseconds=1))
    await add(uow, oldest_pending)
    await move(uow, await add(uow, oldest_published), OutboxStatus.PUBLISHED)
    await move(uow, await add(uow, T0), OutboxStatus.PUBLISHED)
    result = await stats(uow)
    assert result.oldest_pending_at == oldest_pending
    assert result.oldest_published_at == oldest_published
    assert result.oldest_pending_at is not None
    assert result.oldest_published_at is not None
    assert result.oldest_pending_at.tzinfo is UTC
    assert result.oldest_published_at.tzinfo is UTC


async def test_a_second_row_with_the_same_event_id_is_a_duplicate_event(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """The unique event id surfaces as DuplicateEvent (what idempotent recording relies on),
    and the first row is found by its event id."""
    first = await add(uow, T0)
    async with uow() as unit:
        with pytest.raises(DuplicateEvent):
            await record_chat_message(
                unit, chat(), topic=TOPIC, clock=ManualClock(T0), event_ids=lambda: first.event_id
            )
    async with uow() as unit:
        found = await unit.outbox.by_event_id(first.event_id)
    assert found is not None
    assert found.id == first.id
