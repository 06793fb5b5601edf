"""A chat message as persisted in chat history, keyed by its event id."""

from __future__ import annotations

from datetime import datetime

import attrs

from chat_outbox.domain.chat import Role
from chat_outbox.domain.envelope import Envelope


@attrs.frozen
class HistoryEntry:
    event_id: str
    outbox_id: int
    conversation_id: str
    user_id: int
    role: Role
    message: str
    recorded_at: datetime

    @classmethod
    def from_envelope(cls, envelope: Envelope) -> HistoryEntry:
        chat = envelope.payload
        return cls(
            event_id=envelope.event_id,
            outbox_id=envelope.outbox_id,
            conversation_id=chat.conversation_id,
            user_id=chat.user_id,
            role=chat.role,
            message=chat.message,
            recorded_at=envelope.occurred_at,
        )
