"""Conversation owners on SQLAlchemy Core: one row per claimed conversation, never updated."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Insert, Select, insert, select
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from chat_outbox.adapters.sql.tables import conversation_owners as o
from chat_outbox.application.ports import ConversationOwners


def insert_if_absent(dialect: str) -> Insert:
    """An INSERT that does nothing when the conversation has an owner: it waits for a
    concurrent uncommitted claim of the same conversation, then skips or inserts."""
    if dialect == "postgresql":
        return postgresql.insert(o).on_conflict_do_nothing(index_elements=[o.c.conversation_id])
    if dialect in ("mysql", "mariadb"):
        return mysql.insert(o).prefix_with("IGNORE")
    if dialect == "sqlite":
        return sqlite.insert(o).prefix_with("OR IGNORE")
    return insert(o)  # any other database: a concurrent first claim fails instead


class SqlConversationOwners(ConversationOwners):
    def __init__(self, connection: AsyncConnection) -> None:
        self._conn = connection

    async def claim(self, conversation_id: str, user_id: int, at: datetime) -> int:
        # Callers look the owner up first (an owner row never changes), so a claim is for a
        # conversation that had none: insert, then read back whichever claim won.
        dialect = self._conn.dialect.name
        await self._conn.execute(
            insert_if_absent(dialect).values(
                conversation_id=conversation_id, user_id=user_id, created_at=at
            )
        )
        latest = _owner(conversation_id)
        if dialect in ("mysql", "mariadb"):
            # A locking read sees the latest committed row, which a REPEATABLE READ snapshot
            # may not; a shared lock, as INSERT IGNORE already holds one on a duplicate
            # key, where FOR UPDATE would deadlock two claimants of one conversation.
            latest = latest.with_for_update(read=True)
        found: int = (await self._conn.execute(latest)).scalar_one()
        return found

    async def owner_of(self, conversation_id: str) -> int | None:
        owner: int | None = (await self._conn.execute(_owner(conversation_id))).scalar()
        return owner


def _owner(conversation_id: str) -> Select[Any]:
    return select(o.c.user_id).where(o.c.conversation_id == conversation_id)
