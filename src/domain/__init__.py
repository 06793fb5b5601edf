"""The outbox domain: pure state machine, retry policy, chat message and envelope.

Imports nothing but the standard library and attrs.
"""

from chat_outbox.domain.chat import DEFAULT_MAX_MESSAGE_BYTES, ChatMessage, Role
from chat_outbox.domain.envelope import SCHEMA_VERSION, Envelope
from chat_outbox.domain.errors import (
    DomainError,
    IllegalTransition,
    InvalidChatMessage,
    InvalidEvent,
    MalformedEnvelope,
    UnknownEventType,
)
from chat_outbox.domain.events import Event, EventType
from chat_outbox.domain.history import HistoryEntry
from chat_outbox.domain.outbox import (
    BIZ_TYPE_CHAT_HISTORY,
    DEFAULT_MAX_RETRY,
    HOLDING_STATUSES,
    TABLE,
    OutboxEvent,
    OutboxMessage,
    OutboxStatus,
    Transition,
    apply_to,
    consumed,
    handler_failed,
    holds_back_later_messages,
    requeued,
    statuses_changed_by,
    swept,
)
from chat_outbox.domain.retry import PublishFailure, RetryPolicy

__all__ = [
    "BIZ_TYPE_CHAT_HISTORY",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_MAX_RETRY",
    "HOLDING_STATUSES",
    "SCHEMA_VERSION",
    "TABLE",
    "ChatMessage",
    "DomainError",
    "Envelope",
    "Event",
    "EventType",
    "HistoryEntry",
    "IllegalTransition",
    "InvalidChatMessage",
    "InvalidEvent",
    "MalformedEnvelope",
    "OutboxEvent",
    "OutboxMessage",
    "OutboxStatus",
    "PublishFailure",
    "RetryPolicy",
    "Role",
    "Transition",
    "UnknownEventType",
    "apply_to",
    "consumed",
    "handler_failed",
    "holds_back_later_messages",
    "requeued",
    "statuses_changed_by",
    "swept",
]
