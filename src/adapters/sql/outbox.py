"""The outbox repository on SQLAlchemy Core; every status change is a guarded UPDATE."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    delete,
    exists,
    func,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from chat_outbox.adapters.sql.claimed import claimed_message
from chat_outbox.adapters.sql.statements import (
    CLAIM_PLAN,
    INSERT_MESSAGE,
    LEASE_HEADS,
    LEASE_IDS,
    LOCK_HEADS,
    LOCK_RUNS,
    lock_runs_of_shard,
    outcome_update,
)
from chat_outbox.adapters.sql.tables import outbox_messages as t
from chat_outbox.application.errors import DuplicateEvent
from chat_outbox.application.ports import (
    EVERY_CONVERSATION,
    DeadSelector,
    NewOutboxMessage,
    OutboxRepository,
    OutboxStats,
    Shard,
)
from chat_outbox.domain import (
    BIZ_TYPE_CHAT_HISTORY,
    OutboxEvent,
    OutboxMessage,
    OutboxStatus,
    Transition,
)
from chat_outbox.domain.envelope import PROVENANCE_COLUMNS, Provenance

CHUNK = 1000
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
        return _message({**values, "id": outbox_id})

    async def claim_due(
        self, now: datetime, limit: int, lease: timedelta | None, shard: Shard = EVERY_CONVERSATION
    ) -> list[OutboxMessage]:
        assert lease is None or shard == EVERY_CONVERSATION, "shards narrow locked claims only"
        dialect = self._conn.dialect.name
        params: dict[str, Any] = {"now": now, "limit": limit}
        if dialect == "postgresql":
            await self._conn.execute(CLAIM_PLAN)
        if lease is None:
            # Locked, not leased: the caller's transaction stays open through the publish.
            assert dialect != "sqlite", "SQLite has no row locks; claim with a lease"
            if shard.count == 1:
                return await self._claim_runs(LOCK_RUNS, params)
            params.update(shard_index=shard.index, shard_count=shard.count)
            return await self._claim_runs(lock_runs_of_shard(dialect), params)
        lease_until = now + lease
        if dialect in LEASE_HEADS:
            params["lease_until"] = lease_until
            rows = (await self._conn.execute(LEASE_HEADS[dialect], params)).all()
            return sorted((claimed_message(row) for row in rows), key=lambda message: message.id)
        rows = (await self._conn.execute(LOCK_HEADS, params)).all()
        for chunk in _chunks([row.id for row in rows]):
            await self._conn.execute(LEASE_IDS, {"ids": list(chunk), "lease_until": lease_until})
        return [claimed_message(row, next_retry_at=lease_until) for row in rows]

    async def _claim_runs(self, claim: Select[Any], params: dict[str, Any]) -> list[OutboxMessage]:
        """LOCK_RUNS, keeping a row when it heads its conversation or follows a kept row (a
        row another relay holds was skipped, and breaks the run)."""
        kept: set[int] = set()
        claimed: list[OutboxMessage] = []
        for row in await self._conn.execute(claim, params):
            if row.previous is None or row.previous in kept:
                kept.add(row.id)
                claimed.append(claimed_message(row[:-1]))
        return claimed

    async def apply(self, transitions: Sequence[Transition]) -> int:
        groups: defaultdict[tuple[Any, ...], list[int]] = defaultdict(list)
        for transition in transitions:
            groups[_changes_key(transition)].append(transition.outbox_id)
        changed = 0
        dialect = self._conn.dialect.name
        for key, ids in groups.items():
            guard, values = _guard_and_values(key)
            statement = outcome_update(dialect, tuple(guard), tuple(values))
            params = {f"v_{column}": value for column, value in values.items()}
            for chunk in _chunks(ids):
                result = await self._conn.execute(statement, {**params, "ids": list(chunk)})
                changed += result.rowcount
        return changed

    async def by_event_id(self, event_id: str) -> OutboxMessage | None:
        query = select(t).where(t.c.event_id == event_id)
        row = (await self._conn.execute(query)).mappings().first()
        return None if row is None else _message(row)

    async def first_of(self, conversation_id: str) -> OutboxMessage | None:
        query = (
            select(t)
            .where(t.c.message_key == conversation_id, t.c.biz_type == BIZ_TYPE_CHAT_HISTORY)
            .order_by(t.c.id)
            .limit(1)
        )
        row = (await self._conn.execute(query)).mappings().first()
        return None if row is None else _message(row)

    async def get(self, outbox_id: int) -> OutboxMessage | None:
        row = (await self._conn.execute(select(t).where(t.c.id == outbox_id))).mappings().first()
        return None if row is None else _message(row)

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
            select(t)
            .where(t.c.status == OutboxStatus.DEAD.value, t.c.id > after_id)
            .order_by(t.c.id)
            .limit(limit)
        )
        if selector.ids:
            query = query.where(t.c.id.in_(selector.ids))
        if selector.conversation_id is not None:
            query = query.where(t.c.message_key == selector.conversation_id)
        # A dead row is never updated while dead, so updated_at is when it died.
        if selector.died_since is not None:
            query = query.where(t.c.updated_at >= selector.died_since)
        if selector.died_until is not None:
            query = query.where(t.c.updated_at < selector.died_until)
        return [_message(row) for row in (await self._conn.execute(query)).mappings()]

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
            statement = delete(t).where(
                t.c.id.in_(chunk), t.c.status == OutboxStatus.CONSUMED.value
            )
            deleted += (await self._conn.execute(statement)).rowcount
        return deleted

    async def stats(self) -> OutboxStats:
        counted = await self._conn.execute(select(t.c.status, func.count()).group_by(t.c.status))
        counts = {status: 0 for status in OutboxStatus}
        for status, count in counted:
            counts[OutboxStatus(status)] = count
        oldest_pending = await self._conn.scalar(
            select(func.min(t.c.created_at)).where(t.c.status == OutboxStatus.PENDING.value)
        )
        oldest_published = await self._conn.scalar(
            select(func.min(t.c.published_at)).where(t.c.status == OutboxStatus.PUBLISHED.value)
        )
        held = await self._conn.scalar(select(func.count()).where(_behind_dead()))
        return OutboxStats(counts, oldest_pending, oldest_published, held or 0)


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


def _changes_key(transition: Transition) -> tuple[Any, ...]:
    return (
        transition.event,
        transition.to_status,
        transition.at,
        transition.retry_count,
        transition.next_retry_at,
        transition.last_error,
    )


def _guard_and_values(key: tuple[Any, ...]) -> tuple[list[str], dict[str, Any]]:
    """The SQL twin of domain.apply_to: same fields, guarded by the domain's table."""
    event, to_status, at, retry_count, next_retry_at, last_error = key
    sample = Transition(0, event, to_status, at)
    values: dict[str, Any] = {"status": to_status.value, "updated_at": at}
    if retry_count is not None:
        values["retry_count"] = retry_count
    if next_retry_at is not None:
        values["next_retry_at"] = next_retry_at
    if last_error is not None:
        values["last_error"] = last_error
    if event is OutboxEvent.PUBLISH_ACKED:
        values["published_at"] = at
    elif event is OutboxEvent.CONSUMED:
        values["consumed_at"] = at
    return sorted(status.value for status in sample.guard), values


def _chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def _message(row: Any) -> OutboxMessage:
    return OutboxMessage(
        id=row["id"],
        event_id=row["event_id"],
        biz_type=row["biz_type"],
        topic=row["topic"],
        message_key=row["message_key"],
        payload=row["payload"],
        status=OutboxStatus(row["status"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        next_retry_at=row["next_retry_at"],
        retry_count=row["retry_count"],
        max_retry=row["max_retry"],
        last_error=row.get("last_error"),
        published_at=row.get("published_at"),
        consumed_at=row.get("consumed_at"),
        traceparent=row.get("traceparent"),
    )
