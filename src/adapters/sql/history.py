"""Chat history on SQLAlchemy Core: an insert that ignores event ids already present."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from chat_outbox.adapters.sql.tables import chat_history as t
from chat_outbox.application.ports import ChatHistoryRepository
from chat_outbox.domain import HistoryEntry, Role

CHUNK = 500
INSERT_IGNORE = insert(t).prefix_with("IGNORE")
INSERT_NEW_COLUMNS = text(
    f"""
    INSERT INTO {t.name}
        (event_id, outbox_id, conversation_id, user_id, role, message, recorded_at, persisted_at)
    SELECT e, o, c, u, r, m, at, CAST(:persisted_at AS TIMESTAMP)
    FROM unnest(
        CAST(:event_ids AS VARCHAR[]), CAST(:outbox_ids AS BIGINT[]),
        CAST(:conversation_ids AS VARCHAR[]), CAST(:user_ids AS BIGINT[]),
        CAST(:roles AS VARCHAR[]), CAST(:messages AS TEXT[]), CAST(:recorded_ats AS TIMESTAMP[])
    ) AS row(e, o, c, u, r, m, at)
    ON CONFLICT (event_id) DO NOTHING
    """
)
INSERT_NEW = {  # built once: a statement memoises its cache key
    name: upsert(t).on_conflict_do_nothing(index_elements=["event_id"]).returning(t.c.event_id)
    for name, upsert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}


class SqlChatHistoryRepository(ChatHistoryRepository):
    def __init__(self, connection: AsyncConnection) -> None:
        self._conn = connection

    async def add_many(self, entries: Sequence[HistoryEntry]) -> int:
        now = datetime.now(UTC)
        if self._conn.dialect.name == "postgresql":
            return await self._insert_new_columns(entries, now)
        inserted = 0
        for start in range(0, len(entries), CHUNK):
            rows = [_row(entry, now) for entry in entries[start : start + CHUNK]]
            inserted += await self._insert_new(rows)
        return inserted

    async def _insert_new(self, rows: list[dict[str, Any]]) -> int:
        # Executemany, not one multi-row VALUES: SQLAlchemy caches its compiled form, but
        # compiles a multi-row VALUES clause afresh each batch.
        dialect = self._conn.dialect.name
        if dialect in ("mysql", "mariadb"):
            # IGNORE's row count is the rows inserted (ON DUPLICATE KEY would count a kept
            # duplicate too); its softening of data errors cannot bite, since the domain
            # validated every column before it got here.
            return (await self._conn.execute(INSERT_IGNORE, rows)).rowcount
        return len((await self._conn.execute(INSERT_NEW[dialect], rows)).all())

    async def _insert_new_columns(self, entries: Sequence[HistoryEntry], now: datetime) -> int:
        """PostgreSQL: one statement of eight arrays (unnest), bound by asyncpg in C. Row by
        row parameters cost more CPU than the database spends on the insert. The row count
        is the rows inserted (a conflict inserts none); returning their ids cost a fifth
        of the insert."""
        if not entries:
            return 0
        columns = history_columns(entries, now)
        return (await self._conn.execute(INSERT_NEW_COLUMNS, columns)).rowcount

    async def by_event_ids(self, event_ids: Sequence[str]) -> dict[str, HistoryEntry]:
        found: dict[str, HistoryEntry] = {}
        for start in range(0, len(event_ids), CHUNK):
            query = select(t).where(t.c.event_id.in_(event_ids[start : start + CHUNK]))
            for row in (await self._conn.execute(query)).mappings():
                found[row["event_id"]] = history_entry(row)
        return found

    async def for_conversation(
        self, conversation_id: str, limit: int, after_outbox_id: int = 0
    ) -> list[HistoryEntry]:
        query = (
            select(t)
            .where(t.c.conversation_id == conversation_id, t.c.outbox_id > after_outbox_id)
            .order_by(t.c.outbox_id)
            .limit(limit)
        )
        return [history_entry(row) for row in (await self._conn.execute(query)).mappings()]


def history_columns(entries: Sequence[HistoryEntry], now: datetime) -> dict[str, Any]:
    """The parameters of INSERT_NEW_COLUMNS: a list per column, and persisted_at."""
    return {
        "event_ids": [entry.event_id for entry in entries],
        "outbox_ids": [entry.outbox_id for entry in entries],
        "conversation_ids": [entry.conversation_id for entry in entries],
        "user_ids": [entry.user_id for entry in entries],
        "roles": [entry.role.value for entry in entries],
        "messages": [entry.message for entry in entries],
        "recorded_ats": [naive_utc(entry.recorded_at) for entry in entries],
        "persisted_at": naive_utc(now),
    }


def _row(entry: HistoryEntry, now: datetime) -> dict[str, Any]:
    return {
        "event_id": entry.event_id,
        "outbox_id": entry.outbox_id,
        "conversation_id": entry.conversation_id,
        "user_id": entry.user_id,
        "role": entry.role.value,
        "message": entry.message,
        "recorded_at": entry.recorded_at,
        "persisted_at": now,
    }


def history_entry(row: Any) -> HistoryEntry:
    """A chat_history row as the domain's entry."""
    return HistoryEntry(
        event_id=row["event_id"],
        outbox_id=row["outbox_id"],
        conversation_id=row["conversation_id"],
        user_id=row["user_id"],
        role=Role(row["role"]),
        message=row["message"],
        recorded_at=row["recorded_at"],
    )


def naive_utc(moment: datetime) -> datetime:
    """What the UTC columns store (see tables.UtcDateTime), for binds that bypass it."""
    return moment.astimezone(UTC).replace(tzinfo=None)
