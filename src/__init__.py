"""chat-outbox: a transactional outbox for AI-agent chat messages.

Record a message (or an event of a type you register) in your own SQLAlchemy transaction
with `Outbox.record`; run the relay (outbox -> Kafka or RabbitMQ) and the consumer (bus ->
chat history, and your handlers) with `Outbox.relay()` and `Outbox.consumer()`. What this
module exports is the public API; every submodule is internal and may change.
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
from chat_outbox.application.errors import (
    DuplicateEvent,
    IdempotencyConflict,
    PermanentHandlerError,
)
from chat_outbox.application.relay.relaying import RelayReport
from chat_outbox.domain import (
    ChatMessage,
    Event,
    EventType,
    HistoryEntry,
    InvalidChatMessage,
    InvalidEvent,
    Role,
    UnknownEventType,
)
from chat_outbox.entrypoints.config import ConfigError, Settings
from chat_outbox.entrypoints.events import EventRegistry
from chat_outbox.entrypoints.library import Job, Outbox, Recorded

__all__ = [
    "MIGRATIONS",
    "VERSION_TABLE",
    "ChatMessage",
    "ConfigError",
    "ConsumeReport",
    "DuplicateEvent",
    "Event",
    "EventRegistry",
    "EventType",
    "HistoryEntry",
    "IdempotencyConflict",
    "InvalidChatMessage",
    "InvalidEvent",
    "Job",
    "MissingExtra",
    "Outbox",
    "PermanentHandlerError",
    "Recorded",
    "RelayReport",
    "Role",
    "SchemaNotMigrated",
    "Settings",
    "UnknownEventType",
    "metadata",
    "run_migrations",
]
