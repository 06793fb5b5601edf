"""chat-outbox: a transactional outbox for AI-agent chat messages.

Record a message in your own SQLAlchemy transaction with `Outbox.record`; run the relay
(outbox -> Kafka or RabbitMQ) and the consumer (bus -> chat history) with `Outbox.relay()`
and `Outbox.consumer()`. What this module exports is the public API; every submodule is
internal and may change.
"""

from chat_outbox.adapters.extras import MissingExtra
from chat_outbox.adapters.sql import (
    MIGRATIONS,
    VERSION_TABLE,
    SchemaNotMigrated,
    metadata,
    run_migrations,
)
from chat_outbox.application.consume.consuming import ConsumeReport
from chat_outbox.application.errors import DuplicateEvent, IdempotencyConflict
from chat_outbox.application.relay.relaying import RelayReport
from chat_outbox.domain import ChatMessage, HistoryEntry, InvalidChatMessage, Role
from chat_outbox.entrypoints.config import ConfigError, Settings
from chat_outbox.entrypoints.library import Job, Outbox, Recorded

__all__ = [
    "MIGRATIONS",
    "VERSION_TABLE",
    "ChatMessage",
    "ConfigError",
    "ConsumeReport",
    "DuplicateEvent",
    "HistoryEntry",
    "IdempotencyConflict",
    "InvalidChatMessage",
    "Job",
    "MissingExtra",
    "Outbox",
    "Recorded",
    "RelayReport",
    "Role",
    "SchemaNotMigrated",
    "Settings",
    "metadata",
    "run_migrations",
]
