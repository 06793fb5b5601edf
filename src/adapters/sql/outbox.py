"""The outbox repository on SQLAlchemy Core; every status change is a guarded UPDATE."""

from __future__ import annotations

import operator
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Update,
    and_,
    delete,
    exists,
    func,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from chat_outbox.adapters.sql import attempts
from chat_outbox.adapters.sql.rows import message_columns, message_of
from chat_outbox.adapters.sql.statements import INSERT_MESSAGE, outcome_update
from chat_outbox.adapters.sql.tables import event_inbox
from chat_outbox.adapters.sql.tables import outbox_messages as t
from chat_outbox.application.errors import DuplicateEvent
from chat_outbox.application.ports import (
    DeadSelector,
    NewOutboxMessage,
    OutboxRepository,
    OutboxStats,
)
from chat_outbox.domain import (
    BIZ_TYPE_CHAT_HISTORY,
    OutboxMessage,
    OutboxStatus,
    Transition,
)
from chat_outbox.domain.envelope import PROVENANCE_COLUMNS, Provenance

CHUNK = 1000
ROW = select(*message_columns(t))
PROVENANCE_SELECT = tuple(t.c[name] for name in PROVENANCE_COLUMNS)


class SqlOutboxRepository(OutboxRepository):
    def __init__(self, connection: AsyncConnection) -> None:
        self._conn = connection

    async def add(self, message: NewOutboxMessage) -> OutboxMessage:
        values = {
            "event_id": message.event_id,
            "biz_type": message.biz_type,
            "topic": message.topic,
            "message_key": message.message_key,
            "payload": message.payload,
            "status": OutboxStatus.PENDING.value,
            "retry_count": 0,
            "max_retry": message.max_retry,
            "next_retry_at": message.created_at,
            "created_at": message.created_at,
            "updated_at": message.created_at,
            "traceparent": message.traceparent,
        }
        try:
            result = await self._conn.execute(INSERT_MESSAGE, values)
        except IntegrityError as error:
            if "event_id" in str(error.orig):  # the constraint's or the column's name
                raise DuplicateEvent(message.event_id) from error
            raise
        (outbox_id,) = result.inserted_primary_key or (None,)
        assert isinstance(outbox_id, int), "the database returned no primary key"
        return message.recorded_as(outbox_id)

    async def apply(self, transitions: Sequence[Transition]) -> int:
        groups: defaultdict[tuple[object, ...], list[int]] = defaultdict(list)
        samples: dict[tuple[object, ...], Transition] = {}
        for transition in transitions:
            key = transition.changes_key
            groups[key].append(transition.outbox_id)
            samples.setdefault(key, transition)
        changed = 0
        dialect = self._conn.dialect.name
        for key, ids in groups.items():
            statement, params = _guarded_update(dialect, samples[key])
            for chunk in _chunks(ids):
                result = await self._conn.execute(statement, {**params, "ids": list(chunk)})
                changed += result.rowcount
        await attempts.journal(self._conn, transitions)
        return changed

    async def by_event_id(self, event_id: str) -> OutboxMessage | None:
        return await self._one(ROW.where(t.c.event_id == event_id))

    async def first_of(self, conversation_id: str) -> OutboxMessage | None:
        query = (
            ROW.where(t.c.message_key == conversation_id, t.c.biz_type == BIZ_TYPE_CHAT_HISTORY)
            .order_by(t.c.id)
            .limit(1)
        )
        return await self._one(query)

    async def get(self, outbox_id: int) -> OutboxMessage | None:
        return await self._one(ROW.where(t.c.id == outbox_id))

    async def _one(self, query: Select[Any]) -> OutboxMessage | None:
        row = (await self._conn.execute(query)).first()
        return None if row is None else message_of(row)

    async def provenances(self, outbox_ids: Sequence[int]) -> dict[int, Provenance]:
        found: dict[int, Provenance] = {}
        for chunk in _chunks(list(outbox_ids)):
            query = select(*PROVENANCE_SELECT).where(t.c.id.in_(chunk))
            for row in await self._conn.execute(query):
                found[row.id] = Provenance(*row)
        return found

    async def dead(
        self, selector: DeadSelector, limit: int, after_id: int = 0
    ) -> list[OutboxMessage]:
        query = (
            ROW.where(t.c.status == OutboxStatus.DEAD.value, t.c.id > after_id)
            .order_by(t.c.id)
            .limit(limit)
        )
        for criterion in selector.criteria():
            query = query.where(_SQL_TESTS[criterion.test](t.c[criterion.field], criterion.value))
        return [message_of(row) for row in await self._conn.execute(query)]

    async def newest_id(self) -> int:
        newest = (await self._conn.execute(select(func.max(t.c.id)))).scalar()
        return int(newest or 0)

    async def held_behind_dead(self, conversation_ids: Sequence[str]) -> dict[str, int]:
        held = {conversation: 0 for conversation in conversation_ids}
        if not conversation_ids:
            return held
        query = (
            select(t.c.message_key, func.count())
            .where(t.c.message_key.in_(list(conversation_ids)), _behind_dead())
            .group_by(t.c.message_key)
        )
        held.update({key: count for key, count in await self._conn.execute(query)})
        return held

    async def published_before(self, cutoff: datetime, limit: int) -> list[int]:
        query = (
            select(t.c.id)
            .where(t.c.status == OutboxStatus.PUBLISHED.value, t.c.published_at < cutoff)
            .order_by(t.c.id)
            .limit(limit)
        )
        return list((await self._conn.execute(query)).scalars())

    async def purge_consumed(self, consumed_before: datetime, limit: int) -> int:
        # Select first: MariaDB cannot DELETE ... WHERE id IN (subquery with LIMIT).
        query = (
            select(t.c.id)
            .where(t.c.status == OutboxStatus.CONSUMED.value, t.c.consumed_at < consumed_before)
            .order_by(t.c.id)
            .limit(limit)
        )
        ids = list((await self._conn.execute(query)).scalars())
        deleted = 0
        for chunk in _chunks(ids):
            await attempts.forget(self._conn, chunk)
            # A redelivery after this finds no row to vouch for it: the inbox line can go.
            await self._conn.execute(delete(event_inbox).where(event_inbox.c.outbox_id.in_(chunk)))
            statement = delete(t).where(
                t.c.id.in_(chunk), t.c.status == OutboxStatus.CONSUMED.value
            )
            deleted += (await self._conn.execute(statement)).rowcount
        return deleted

    async def stats(self) -> OutboxStats:
        counted = await self._conn.execute(
            select(t.c.biz_type, t.c.status, func.count()).group_by(t.c.biz_type, t.c.status)
        )
        counts = {status: 0 for status in OutboxStatus}
        by_type: dict[str, dict[OutboxStatus, int]] = {}
        for biz_type, status, count in counted:
            counts[OutboxStatus(status)] += count
            by_type.setdefault(biz_type, {s: 0 for s in OutboxStatus})[OutboxStatus(status)] = count
        oldest_pending = await self._conn.scalar(
            select(func.min(t.c.created_at)).where(t.c.status == OutboxStatus.PENDING.value)
        )
        oldest_published = await self._conn.scalar(
            select(func.min(t.c.published_at)).where(t.c.status == OutboxStatus.PUBLISHED.value)
        )
        held = await self._conn.scalar(select(func.count()).where(_behind_dead()))
        return OutboxStats(counts, oldest_pending, oldest_published, held or 0, by_type)


_SQL_TESTS: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "in": lambda column, values: column.in_(values),
    "==": operator.eq,
    ">=": operator.ge,
    "<": operator.lt,
}


def _behind_dead() -> ColumnElement[bool]:
    """A pending row with an earlier dead row in its conversation."""
    dead = t.alias("dead")
    return and_(
        t.c.status == OutboxStatus.PENDING.value,
        exists().where(
            dead.c.message_key == t.c.message_key,
            dead.c.status == OutboxStatus.DEAD.value,
            dead.c.id < t.c.id,
        ),
    )


def _guarded_update(dialect: str, transition: Transition) -> tuple[Update, dict[str, Any]]:
    """The UPDATE writing `transition.changes()` guarded by `transition.guard`, and its
    parameters but the ids."""
    changes = transition.changes()
    guard = tuple(sorted(status.value for status in transition.guard))
    statement = outcome_update(dialect, guard, tuple(changes))
    return statement, {f"v_{column}": value for column, value in changes.items()}


def _chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]
