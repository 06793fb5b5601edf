"""Conversation owners: one contract for the in-memory fake and the SQL adapter on every
database, first claims racing across connections, and migration 0010's backfill."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import delete, inspect, select

from chat_outbox.adapters.clock import SystemClock, uuid4_event_id
from chat_outbox.adapters.memory import InMemoryStore, InMemoryUnitOfWork
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory, create_engine, upgrade
from chat_outbox.adapters.sql.tables import conversation_owners, outbox_messages
from chat_outbox.application.errors import NotOwner
from chat_outbox.application.ports import UnitOfWorkFactory
from chat_outbox.application.record.recording import Claim, RecordChatMessage
from chat_outbox.domain import ChatMessage, HistoryEntry, Role
from tests.integration.databases import fresh_database_url
from tests.integration.test_exact_identifiers import downgrade_to

pytestmark = pytest.mark.integration

T = TypeVar("T")
AT = datetime(2026, 1, 1, tzinfo=UTC)
ALICE, BOB = 1, 2
BLOCKED = 0.5
"""How long a claimant must stay blocked to count as waiting for the other's transaction."""


@pytest.fixture(params=["memory", "sql"])
def units(request: pytest.FixtureRequest, uow: SqlUnitOfWorkFactory) -> UnitOfWorkFactory:
    """Units of work of the fake, or of the SQL adapter on the test's database."""
    if request.param == "memory":
        store = InMemoryStore()
        return lambda: InMemoryUnitOfWork(store)
    return uow


async def claimed(units: UnitOfWorkFactory, conversation: str, user: int) -> int:
    async with units() as unit:
        owner = await unit.owners.claim(conversation, user, AT)
        await unit.commit()
    return owner


async def owner_of(units: UnitOfWorkFactory, conversation: str) -> int | None:
    async with units() as unit:
        return await unit.owners.owner_of(conversation)


async def test_the_first_claimant_owns_and_later_claimants_learn_the_owner(
    units: UnitOfWorkFactory,
) -> None:
    """A first claim makes its user owner; a second user's claim returns the first."""
    assert await claimed(units, "c1", ALICE) == ALICE
    assert await claimed(units, "c1", BOB) == ALICE
    assert await claimed(units, "c2", BOB) == BOB
    assert (await owner_of(units, "c1"), await owner_of(units, "c2")) == (ALICE, BOB)


async def test_an_unclaimed_conversation_has_no_owner(units: UnitOfWorkFactory) -> None:
    """owner_of is None for a conversation nobody claimed, even beside a claimed one whose
    id differs by a trailing space."""
    await claimed(units, "c1", ALICE)
    assert await owner_of(units, "c-unknown") is None
    assert await owner_of(units, "c1 ") is None


async def test_a_claim_rolls_back_with_its_unit_of_work(units: UnitOfWorkFactory) -> None:
    """A claim whose unit of work ends uncommitted leaves no owner, and inside the unit of
    work it is already visible."""
    async with units() as unit:
        assert await unit.owners.claim("c1", ALICE, AT) == ALICE
        assert await unit.owners.owner_of("c1") == ALICE
    assert await owner_of(units, "c1") is None
    assert await claimed(units, "c1", BOB) == BOB


async def still_waiting(task: Awaitable[T]) -> asyncio.Task[T]:
    """The awaitable as a task, checked to be blocked for BLOCKED seconds."""
    started = asyncio.ensure_future(task)
    done, _ = await asyncio.wait([started], timeout=BLOCKED)
    assert not done, "the second claimant did not wait for the first's transaction"
    return started


@pytest.mark.parametrize("first_commits", [True, False], ids=["commit", "rollback"])
async def test_a_concurrent_first_claim_waits_for_the_first_transaction(
    uow: SqlUnitOfWorkFactory, first_commits: bool
) -> None:
    """While A's claim for Alice is uncommitted, B's claim for Bob on another connection
    blocks (SQLite: on A's write lock); A commits and B gets Alice, or A rolls back and B
    becomes owner."""
    async with uow() as a:
        assert await a.owners.claim("race", ALICE, AT) == ALICE
        b = await still_waiting(claimed(uow, "race", BOB))
        if first_commits:
            await a.commit()
    assert await asyncio.wait_for(b, 30) == (ALICE if first_commits else BOB)
    assert await owner_of(uow, "race") == (ALICE if first_commits else BOB)


async def test_two_users_recording_first_at_once_one_owns_and_the_other_is_refused(
    uow: SqlUnitOfWorkFactory,
) -> None:
    """Two claimed records into one new conversation at the same moment: exactly one is
    recorded, the other raises NotOwner, and its writer is not the owner."""
    record = RecordChatMessage(uow, SystemClock(), uuid4_event_id, "t")
    outcomes = await asyncio.gather(
        *(
            record(ChatMessage(user, "both", Role.USER, "first!"), claim=Claim(user))
            for user in (ALICE, BOB)
        ),
        return_exceptions=True,
    )
    refused = [o for o in outcomes if isinstance(o, NotOwner)]
    assert len(refused) == 1, outcomes
    winner = ALICE if isinstance(outcomes[1], NotOwner) else BOB
    assert await owner_of(uow, "both") == winner
    async with uow.engine.connect() as connection:
        rows = (await connection.execute(select(outbox_messages.c.payload))).scalars().all()
    assert len(rows) == 1
    assert f'"user_id":{winner},' in rows[0]


def entry(outbox_id: int, conversation: str, user: int) -> HistoryEntry:
    return HistoryEntry(
        event_id=f"e-{outbox_id}",
        outbox_id=outbox_id,
        conversation_id=conversation,
        user_id=user,
        role=Role.USER,
        message="hi",
        recorded_at=AT,
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mariadb"])
async def test_migration_0010_backfills_each_conversations_first_user(
    backend: str, tmp_path: Path
) -> None:
    """At 0009, c-a's first message is Alice's (history only, its outbox row purged) before
    Bob's pending one, and c-b's is Bob's pending one before Alice's delivered one; after
    the upgrade Alice owns c-a and Bob c-b, and downgrading drops the table."""
    engine = create_engine(await fresh_database_url(backend, tmp_path, "owners_backfill"))
    try:
        await upgrade(engine, "0009")
        uow = SqlUnitOfWorkFactory(engine)
        record = RecordChatMessage(uow, SystemClock(), uuid4_event_id, "t")
        ids = [
            (await record(ChatMessage(user, conversation, Role.USER, "hi"))).id
            for conversation, user in (("c-a", ALICE), ("c-b", BOB), ("c-a", BOB), ("c-b", ALICE))
        ]
        async with uow() as unit:
            await unit.history.add_many([entry(ids[0], "c-a", ALICE), entry(ids[3], "c-b", ALICE)])
            await unit.commit()
        async with engine.begin() as connection:
            await connection.execute(delete(outbox_messages).where(outbox_messages.c.id == ids[0]))
        await upgrade(engine)
        async with engine.connect() as connection:
            query = select(conversation_owners.c.conversation_id, conversation_owners.c.user_id)
            owners = {row[0]: row[1] for row in await connection.execute(query)}
        assert owners == {"c-a": ALICE, "c-b": BOB}
        await downgrade_to(engine, "0009")
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        assert conversation_owners.name not in tables
        assert outbox_messages.name in tables
    finally:
        await engine.dispose()
