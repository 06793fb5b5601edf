"""Operator writes on real databases: requeue, sweep and purge touch only what the table allows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.clock import ManualClock, uuid4_event_id
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.adapters.sql.tables import outbox_messages
from chat_outbox.application.operate.operations import (
    purge_consumed,
    requeue_dead,
    sweep_stale_published,
)
from chat_outbox.application.ports import DeadSelector
from chat_outbox.application.record.recording import record_chat_message
from chat_outbox.domain import (
    ChatMessage,
    OutboxStatus,
    PublishFailure,
    RetryPolicy,
    Transition,
    requeued,
    swept,
)

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
CUTOFF = T0 + timedelta(hours=1)
LATER = T0 + timedelta(hours=2)
NOW = T0 + timedelta(hours=3)

Rows = dict[int, dict[str, Any]]


async def seed(
    uow: SqlUnitOfWorkFactory, status: OutboxStatus, at: datetime = T0, conversation: str = "c-1"
) -> int:
    """A row in `status`, moved there by domain transitions at `at`; dead rows retried once."""
    async with uow() as unit:
        chat = ChatMessage.create(
            user_id=7, conversation_id=conversation, role="user", message="hi"
        )
        message = await record_chat_message(
            unit, chat, topic="chat", clock=ManualClock(at), event_ids=uuid4_event_id
        )
        transitions: list[Transition | None] = []
        if status is OutboxStatus.PUBLISHED:
            transitions = [message.mark_published(at)]
        elif status is OutboxStatus.CONSUMED:
            transitions = [message.mark_consumed(at)]
        elif status is OutboxStatus.DEAD:
            transitions = [
                message.record_publish_failure(PublishFailure("flaky"), at, RetryPolicy()),
                message.record_publish_failure(PublishFailure.fatal("bad"), at, RetryPolicy()),
            ]
        for transition in transitions:
            assert transition is not None
            assert await unit.outbox.apply([transition]) == 1
        await unit.commit()
    return message.id


async def rows(engine: AsyncEngine) -> Rows:
    async with engine.connect() as connection:
        result = await connection.execute(select(outbox_messages))
        return {row["id"]: dict(row) for row in result.mappings()}


async def apply(uow: SqlUnitOfWorkFactory, transitions: list[Transition]) -> int:
    async with uow() as unit:
        changed = await unit.outbox.apply(transitions)
        await unit.commit()
    return changed


def without(all_rows: Rows, outbox_id: int) -> Rows:
    return {key: row for key, row in all_rows.items() if key != outbox_id}


async def test_requeue_moves_a_dead_row_to_pending_with_retries_reset(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """requeue_dead makes the dead row due now with retry_count 0 and leaves other rows alone."""
    dead = await seed(uow, OutboxStatus.DEAD)
    for status in (OutboxStatus.PENDING, OutboxStatus.PUBLISHED, OutboxStatus.CONSUMED):
        await seed(uow, status)
    before = await rows(engine)
    assert before[dead]["retry_count"] == 2
    assert await requeue_dead(uow, ManualClock(NOW), DeadSelector()) == 1
    after = await rows(engine)
    assert after[dead]["status"] == OutboxStatus.PENDING
    assert (after[dead]["retry_count"], after[dead]["next_retry_at"]) == (0, NOW)
    assert without(after, dead) == without(before, dead)


@pytest.mark.parametrize(
    "status", [OutboxStatus.PENDING, OutboxStatus.PUBLISHED, OutboxStatus.CONSUMED]
)
async def test_a_requeue_transition_is_refused_for_a_row_that_is_not_dead(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory, status: OutboxStatus
) -> None:
    """The guarded UPDATE changes nothing when requeue targets a live or consumed row."""
    outbox_id = await seed(uow, status)
    before = await rows(engine)
    assert await apply(uow, [requeued(outbox_id, NOW)]) == 0
    assert await rows(engine) == before


async def test_sweep_moves_only_published_rows_older_than_the_cutoff_back_to_pending(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """A stale published row becomes due again; recent published and other rows stay as they are."""
    stale = await seed(uow, OutboxStatus.PUBLISHED, T0)
    await seed(uow, OutboxStatus.PUBLISHED, LATER)
    for status in (OutboxStatus.PENDING, OutboxStatus.CONSUMED, OutboxStatus.DEAD):
        await seed(uow, status, T0)
    before = await rows(engine)
    assert await sweep_stale_published(uow, ManualClock(NOW), CUTOFF) == 1
    after = await rows(engine)
    assert (after[stale]["status"], after[stale]["next_retry_at"]) == (OutboxStatus.PENDING, NOW)
    assert without(after, stale) == without(before, stale)


@pytest.mark.parametrize("status", [OutboxStatus.PENDING, OutboxStatus.CONSUMED, OutboxStatus.DEAD])
async def test_a_sweep_transition_is_refused_for_a_row_that_is_not_published(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory, status: OutboxStatus
) -> None:
    """The guarded UPDATE changes nothing when a sweep targets a row that is not published."""
    outbox_id = await seed(uow, status)
    before = await rows(engine)
    assert await apply(uow, [swept(outbox_id, NOW)]) == 0
    assert await rows(engine) == before


async def test_purge_deletes_only_consumed_rows_older_than_the_cutoff_in_batches(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """Five old consumed rows go in batches of two; recent consumed and unconsumed rows stay."""
    for _ in range(5):
        await seed(uow, OutboxStatus.CONSUMED, T0)
    kept = [await seed(uow, OutboxStatus.CONSUMED, LATER)]
    for status in (OutboxStatus.PENDING, OutboxStatus.PUBLISHED, OutboxStatus.DEAD):
        kept.append(await seed(uow, status, T0))
    before = await rows(engine)
    assert await purge_consumed(uow, CUTOFF, batch=2) == 5
    assert await rows(engine) == {outbox_id: before[outbox_id] for outbox_id in kept}


async def test_a_purged_id_is_never_given_to_a_new_message(uow: SqlUnitOfWorkFactory) -> None:
    """After the newest rows are purged, the next message still gets a higher id: ids are
    recording order, and a reused one would sort a new message before older history."""
    purged = [await seed(uow, OutboxStatus.CONSUMED, T0) for _ in range(3)]
    assert await purge_consumed(uow, CUTOFF, batch=10) == 3
    assert await seed(uow, OutboxStatus.PENDING, LATER) > max(purged)


async def test_rows_held_behind_a_dead_message_show_in_stats_and_per_conversation(
    uow: SqlUnitOfWorkFactory,
) -> None:
    """Pending rows after a dead one of their conversation are counted as held; others not."""
    await seed(uow, OutboxStatus.DEAD, conversation="held-conv")
    for _ in range(2):
        await seed(uow, OutboxStatus.PENDING, conversation="held-conv")
    await seed(uow, OutboxStatus.PENDING, conversation="free-conv")
    async with uow() as unit:
        figures = await unit.outbox.stats()
        held = await unit.outbox.held_behind_dead(["held-conv", "free-conv", "absent"])
    assert figures.held == 2
    assert held == {"held-conv": 2, "free-conv": 0, "absent": 0}


async def test_dead_rows_are_selected_by_when_they_died_ids_and_conversation(
    uow: SqlUnitOfWorkFactory,
) -> None:
    """The time range (since included, until excluded), the id list and the conversation
    each narrow the selection, in id order."""
    early = await seed(uow, OutboxStatus.DEAD, T0, conversation="x")
    late = [await seed(uow, OutboxStatus.DEAD, LATER, conversation=c) for c in ("x", "y", "z")]
    edge = await seed(uow, OutboxStatus.DEAD, NOW, conversation="x")
    await seed(uow, OutboxStatus.PENDING, LATER, conversation="x")

    async def selected(selector: DeadSelector) -> list[int]:
        async with uow() as unit:
            return [message.id for message in await unit.outbox.dead(selector, 100)]

    assert await selected(DeadSelector(died_since=CUTOFF, died_until=NOW)) == late
    assert await selected(DeadSelector(died_since=NOW)) == [edge]
    assert await selected(DeadSelector(died_until=LATER)) == [early]
    assert await selected(DeadSelector(outbox_ids=(early, late[2], edge))) == [
        early,
        late[2],
        edge,
    ]
    assert await selected(DeadSelector(conversation_id="x", died_since=CUTOFF)) == [
        late[0],
        edge,
    ]


async def test_dead_rows_page_behind_an_id_cursor_up_to_the_newest_id(
    uow: SqlUnitOfWorkFactory,
) -> None:
    """dead(after_id=n) starts past id n, and newest_id is the highest id recorded."""
    conversation = f"paged-{uuid4_event_id()}"
    dead = [await seed(uow, OutboxStatus.DEAD, conversation=conversation) for _ in range(3)]
    async with uow() as unit:
        page = await unit.outbox.dead(DeadSelector(conversation_id=conversation), 100, dead[0])
        newest = await unit.outbox.newest_id()
    assert [message.id for message in page] == dead[1:]
    assert newest >= dead[-1]


async def test_get_reads_one_row_in_any_status_or_none(uow: SqlUnitOfWorkFactory) -> None:
    """get returns the stored row whatever its status, and None for an unknown id."""
    published = await seed(uow, OutboxStatus.PUBLISHED)
    async with uow() as unit:
        found = await unit.outbox.get(published)
        missing = await unit.outbox.get(published + 1000)
    assert found is not None
    assert (found.id, found.status, found.published_at) == (published, OutboxStatus.PUBLISHED, T0)
    assert missing is None
