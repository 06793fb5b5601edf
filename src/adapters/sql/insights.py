"""The dashboard's reads on SQLAlchemy Core (SQLite, PostgreSQL, MariaDB): each opens a
connection of its own, reads, and writes nothing."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Column, Executable, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.sql.attempts import journal_entry_of, journal_query
from chat_outbox.adapters.sql.engine import is_transient, unavailable
from chat_outbox.adapters.sql.history import history_entry
from chat_outbox.adapters.sql.rows import message_columns, message_of
from chat_outbox.adapters.sql.tables import chat_history as h
from chat_outbox.adapters.sql.tables import outbox_messages as t
from chat_outbox.adapters.sql.tables import relay_members as r
from chat_outbox.application.operate.insights import (
    Activity,
    DeadQuery,
    OutboxInsights,
    Persisted,
    RelayMember,
)
from chat_outbox.domain import OutboxMessage, OutboxStatus
from chat_outbox.domain.journal import JournalEntry

_STATUSES = {status.value: status for status in OutboxStatus}


class SqlInsights(OutboxInsights):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def _all(self, query: Executable) -> list[Any]:
        try:
            async with self._engine.connect() as connection:
                return list(await connection.execute(query))
        except Exception as error:
            if is_transient(error):
                raise unavailable(error) from error
            raise

    async def counts_by_type(self) -> dict[str, dict[OutboxStatus, int]]:
        query = select(t.c.biz_type, t.c.status, func.count()).group_by(t.c.biz_type, t.c.status)
        counts: dict[str, dict[OutboxStatus, int]] = defaultdict(dict)
        for biz_type, status, count in await self._all(query):
            counts[biz_type][_STATUSES[status]] = count
        return dict(counts)

    async def activity(self, start: datetime, step: timedelta, steps: int) -> Activity:
        series = {}
        for name, column in (
            ("recorded", t.c.created_at),
            ("published", t.c.published_at),
            ("consumed", t.c.consumed_at),
        ):
            series[name] = await self._per_step(column, start, step, steps)
        return Activity(start, step, series["recorded"], series["published"], series["consumed"])

    async def _per_step(
        self, column: Column[Any], start: datetime, step: timedelta, steps: int
    ) -> tuple[int, ...]:
        # A CASE of range tests is the one bucketing every dialect shares; grouping happens
        # outside it because PostgreSQL sees the same CASE with new bind numbers as another.
        edges = [start + step * (n + 1) for n in range(steps - 1)]
        bucket = case(
            *((column < edge, literal(n)) for n, edge in enumerate(edges)),
            else_=literal(steps - 1),
        ).label("bucket")
        end = start + step * steps
        inner = select(bucket).where(column >= start, column < end).subquery()
        query = select(inner.c.bucket, func.count()).group_by(inner.c.bucket)
        counts = [0] * steps
        for index, count in await self._all(query):
            counts[int(index)] = count
        return tuple(counts)

    async def relay_members(self, now: datetime) -> list[RelayMember]:
        query = select(r.c.member_id, r.c.alive_until).where(r.c.alive_until > now)
        rows = await self._all(query.order_by(r.c.member_id))
        return [RelayMember(member, alive_until) for member, alive_until in rows]

    async def persisted(self, event_id: str) -> Persisted | None:
        rows = await self._all(select(h).where(h.c.event_id == event_id))
        if not rows:
            return None
        row = rows[0]._mapping
        return Persisted(history_entry(row), row["persisted_at"])

    async def journal(self, outbox_id: int) -> list[JournalEntry]:
        return [journal_entry_of(row) for row in await self._all(journal_query(outbox_id))]

    async def messages(self, outbox_ids: Sequence[int]) -> list[OutboxMessage]:
        if not outbox_ids:
            return []
        query = select(*message_columns(t)).where(t.c.id.in_(list(outbox_ids))).order_by(t.c.id)
        return [message_of(row) for row in await self._all(query)]

    async def conversation_rows(self, conversation_id: str, limit: int) -> list[OutboxMessage]:
        query = (
            select(*message_columns(t))
            .where(t.c.message_key == conversation_id)
            .order_by(t.c.id)
            .limit(limit)
        )
        return [message_of(row) for row in await self._all(query)]

    async def dead(self, query: DeadQuery, limit: int) -> list[OutboxMessage]:
        conditions = [t.c.status == OutboxStatus.DEAD.value]
        if query.conversation_id is not None:
            conditions.append(t.c.message_key == query.conversation_id)
        if query.error_contains:
            # Lowered on both sides by the database itself (ILIKE on PostgreSQL, lower() LIKE
            # lower() elsewhere): Python's lower() differs from SQLite's ASCII-only one (and
            # from every database's for some letters, like 'İ'), so the exact text could miss.
            conditions.append(t.c.last_error.icontains(query.error_contains, autoescape=True))
        if query.died_since is not None:
            conditions.append(t.c.updated_at >= query.died_since)
        if query.died_before is not None:
            conditions.append(t.c.updated_at < query.died_before)
        select_dead = select(*message_columns(t)).where(*conditions).order_by(t.c.id).limit(limit)
        return [message_of(row) for row in await self._all(select_dead)]
