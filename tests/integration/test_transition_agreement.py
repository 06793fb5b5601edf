"""The SQL repository's guarded UPDATE leaves a row as the domain says: the fields of
Transition.changes(), written only from a status in Transition.guard, on every database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.adapters.sql.tables import outbox_messages
from chat_outbox.application.ports import NewOutboxMessage
from chat_outbox.domain import (
    BIZ_TYPE_CHAT_HISTORY,
    OutboxEvent,
    OutboxMessage,
    OutboxStatus,
    Transition,
    apply_to,
    consumed,
    handler_failed,
    requeued,
    swept,
)

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
PAYLOAD = '{"user_id":7,"conversation_id":"c","role":"user","message":"hi"}'
on_sqlite = pytest.mark.parametrize("migrated_engine", ["sqlite"], indirect=True)


def decided(outbox_id: int, event: OutboxEvent, at: datetime, attempts: int = 3) -> Transition:
    """The transition `event` gives, as decided on an earlier snapshot of the row (a late
    or racing write): the guard alone decides whether it still applies."""
    match event:
        case OutboxEvent.PUBLISH_ACKED:
            return Transition(outbox_id, event, OutboxStatus.PUBLISHED, at)
        case OutboxEvent.PUBLISH_FAILED:
            later = at + timedelta(seconds=attempts)
            return Transition(outbox_id, event, OutboxStatus.PENDING, at, attempts, later, "x")
        case OutboxEvent.PUBLISH_FAILED_FATALLY:
            return Transition(outbox_id, event, OutboxStatus.DEAD, at, attempts, at, "too big")
        case OutboxEvent.CONSUMED:
            return consumed(outbox_id, at)
        case OutboxEvent.REQUEUED:
            return requeued(outbox_id, at)
        case OutboxEvent.SWEPT:
            return swept(outbox_id, at)
        case OutboxEvent.HANDLER_FAILED:
            return handler_failed(outbox_id, at, "handler refused")
    raise AssertionError(event)


async def stored_row(
    uow: SqlUnitOfWorkFactory, status: OutboxStatus, retry_count: int = 2
) -> OutboxMessage:
    """A row in `status`, with an earlier attempt's error and, past pending, its stamps."""
    async with uow() as unit:
        new = NewOutboxMessage(str(uuid.uuid4()), BIZ_TYPE_CHAT_HISTORY, "t", "c", PAYLOAD, 20, T0)
        added = await unit.outbox.add(new)
        stamps = {
            "published_at": T0 if status is not OutboxStatus.PENDING else None,
            "consumed_at": T0 if status is OutboxStatus.CONSUMED else None,
        }
        await unit.connection.execute(
            update(outbox_messages)
            .where(outbox_messages.c.id == added.id)
            .values(status=status.value, retry_count=retry_count, last_error="earlier", **stamps)
        )
        row = await unit.outbox.get(added.id)
        await unit.commit()
    assert row is not None
    return row


def expected(row: OutboxMessage, transition: Transition) -> OutboxMessage:
    """The row as the domain says the transition leaves it."""
    after = attrs.evolve(row)
    if row.status in transition.guard:
        apply_to(after, transition)
    return after


async def applied(uow: SqlUnitOfWorkFactory, transitions: list[Transition]) -> int:
    async with uow() as unit:
        changed = await unit.outbox.apply(transitions)
        await unit.commit()
    return changed


async def reread(uow: SqlUnitOfWorkFactory, outbox_id: int) -> OutboxMessage | None:
    async with uow() as unit:
        return await unit.outbox.get(outbox_id)


@pytest.mark.parametrize("event", list(OutboxEvent))
@pytest.mark.parametrize("status", list(OutboxStatus))
async def test_the_guarded_update_writes_the_row_the_domain_gives(
    uow: SqlUnitOfWorkFactory, status: OutboxStatus, event: OutboxEvent
) -> None:
    """From every status, every event's transition changes the row as the domain does, or,
    outside its guard, not at all."""
    row = await stored_row(uow, status)
    transition = decided(row.id, event, T0 + timedelta(minutes=5))

    changed = await applied(uow, [transition])

    assert changed == (status in transition.guard)
    assert await reread(uow, row.id) == expected(row, transition)


@on_sqlite
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    batch=st.lists(
        st.tuples(
            st.sampled_from(list(OutboxStatus)),
            st.sampled_from(list(OutboxEvent)),
            st.integers(0, 3),
            st.integers(0, 19),
        ),
        min_size=1,
        max_size=6,
    )
)
async def test_a_batch_of_mixed_transitions_writes_what_the_domain_gives(
    uow: SqlUnitOfWorkFactory, batch: list[tuple[OutboxStatus, OutboxEvent, int, int]]
) -> None:
    """Transitions grouped into shared UPDATEs (equal changes but for the row) or not, each
    row ends as the domain applies its own transition to it."""
    rows = [await stored_row(uow, status, retry_count=attempts) for status, _, _, attempts in batch]
    transitions = [
        decided(row.id, event, T0 + timedelta(minutes=minutes), attempts=attempts + 1)
        for row, (_, event, minutes, attempts) in zip(rows, batch, strict=True)
    ]

    changed = await applied(uow, transitions)

    assert changed == sum(row.status in t.guard for row, t in zip(rows, transitions, strict=True))
    for row, transition in zip(rows, transitions, strict=True):
        assert await reread(uow, row.id) == expected(row, transition)
