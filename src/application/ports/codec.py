"""How an outbox row becomes a record's bytes, and a record's bytes an envelope."""

from __future__ import annotations

from typing import Protocol

from chat_outbox.domain import OutboxMessage
from chat_outbox.domain.envelope import AnyEnvelope


class EnvelopeCodec(Protocol):
    def encode(self, message: OutboxMessage) -> bytes:
        """The row's envelope; raises MalformedEnvelope when the row cannot be encoded."""
        ...

    def decode(self, data: bytes, max_message_bytes: int) -> AnyEnvelope:
        """Untrusted bytes to a chat message's envelope or another type's; raises
        MalformedEnvelope, and nothing else."""
        ...
