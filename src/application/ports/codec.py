"""How an outbox row becomes a record's bytes, and a record's bytes an envelope."""

from __future__ import annotations

from typing import Protocol

from chat_outbox.domain import Envelope, OutboxMessage


class EnvelopeCodec(Protocol):
    def encode(self, message: OutboxMessage) -> bytes:
        """The row's envelope; raises MalformedEnvelope when the row cannot be encoded."""
        ...

    def decode(self, data: bytes, max_message_bytes: int) -> Envelope:
        """Untrusted bytes to an envelope; raises MalformedEnvelope, and nothing else."""
        ...
