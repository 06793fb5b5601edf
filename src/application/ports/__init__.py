"""The ports the use cases need, named in the domain's words, one module per concern.

Adapters implement these Protocols; mypy checks each adapter where a container binds it.
"""

from chat_outbox.application.ports.bus import (
    IncomingRecord,
    MessageBus,
    MessageSource,
    OutgoingRecord,
    PublishResult,
)
from chat_outbox.application.ports.claims import (
    EVERY_CONVERSATION,
    ClaimedBatch,
    OutboxClaims,
    Shard,
)
from chat_outbox.application.ports.coordination import ConversationOwners, RelayRoster
from chat_outbox.application.ports.history import (
    ChatHistoryRepository,
    HistoryWriter,
    Persisted,
    in_lock_order,
)
from chat_outbox.application.ports.outbox import (
    DeadSelector,
    NewOutboxMessage,
    OutboxRepository,
    OutboxStats,
)
from chat_outbox.application.ports.system import Clock, EventIds, Wakeups
from chat_outbox.application.ports.transaction import UnitOfWork, UnitOfWorkFactory

__all__ = [
    "EVERY_CONVERSATION",
    "ChatHistoryRepository",
    "ClaimedBatch",
    "Clock",
    "ConversationOwners",
    "DeadSelector",
    "EventIds",
    "HistoryWriter",
    "IncomingRecord",
    "MessageBus",
    "MessageSource",
    "NewOutboxMessage",
    "OutboxClaims",
    "OutboxRepository",
    "OutboxStats",
    "OutgoingRecord",
    "Persisted",
    "PublishResult",
    "RelayRoster",
    "Shard",
    "UnitOfWork",
    "UnitOfWorkFactory",
    "Wakeups",
    "in_lock_order",
]
