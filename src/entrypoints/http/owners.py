"""Who owns a conversation: the user of its first recorded message.

The first message is the lowest outbox id of the conversation, found in chat history once
consumed and in the outbox before that (or both; the outbox row may since be purged), so
a conversation is owned from the moment its first message is recorded.
"""

from __future__ import annotations

import json

from sqlalchemy import select

from chat_outbox.adapters.memory import InMemoryUnitOfWork
from chat_outbox.adapters.sql.tables import outbox_messages
from chat_outbox.adapters.sql.uow import SqlUnitOfWork
from chat_outbox.application.ports import UnitOfWork, UnitOfWorkFactory
from chat_outbox.domain import BIZ_TYPE_CHAT_HISTORY

NOBODY = 0
"""The owner of a conversation whose first row cannot be read: no user token matches it."""


async def conversation_owner(uow_factory: UnitOfWorkFactory, conversation_id: str) -> int | None:
    """The first recorded message's user id; None when the conversation has no message."""
    async with uow_factory() as uow:
        persisted = await uow.history.for_conversation(conversation_id, 1)
        before = persisted[0].outbox_id if persisted else None
        # Only an outbox row older than the first persisted one can be the first message.
        payload = await _first_outbox_payload(uow, conversation_id, before)
    if payload is not None:
        return _user_of(payload)
    return persisted[0].user_id if persisted else None


async def _first_outbox_payload(
    uow: UnitOfWork, conversation_id: str, before: int | None
) -> str | None:
    # The port has no such query yet: see the report; both adapters answer it here.
    if isinstance(uow, SqlUnitOfWork):
        t = outbox_messages
        query = (
            select(t.c.payload)
            .where(t.c.message_key == conversation_id, t.c.biz_type == BIZ_TYPE_CHAT_HISTORY)
            .order_by(t.c.id)
            .limit(1)
        )
        if before is not None:
            query = query.where(t.c.id < before)
        payload: str | None = (await uow.connection.execute(query)).scalar()
        return payload
    if isinstance(uow, InMemoryUnitOfWork):
        rows = [
            row
            for row in uow.outbox.rows.values()
            if row.message_key == conversation_id
            and row.biz_type == BIZ_TYPE_CHAT_HISTORY
            and (before is None or row.id < before)
        ]
        return min(rows, key=lambda row: row.id).payload if rows else None
    raise TypeError(f"no owner lookup for {type(uow).__name__}")


def _user_of(payload: str) -> int:
    try:
        user_id = json.loads(payload)["user_id"]
    except (ValueError, TypeError, KeyError, RecursionError):
        return NOBODY
    return user_id if isinstance(user_id, int) and not isinstance(user_id, bool) else NOBODY
