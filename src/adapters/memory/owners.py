"""Conversation owners in memory: a dict from conversation id to its owner's user id."""

from __future__ import annotations

from datetime import datetime

import attrs

from chat_outbox.application.ports import ConversationOwners


@attrs.define
class InMemoryConversationOwners(ConversationOwners):
    owners: dict[str, int]

    async def claim(self, conversation_id: str, user_id: int, at: datetime) -> int:
        return self.owners.setdefault(conversation_id, user_id)

    async def owner_of(self, conversation_id: str) -> int | None:
        return self.owners.get(conversation_id)
