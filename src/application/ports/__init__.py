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
from chat_outbox.application.ports.coordination import ConversationOwners, RelayRoster
from chat_outbox.application.ports.history import ChatHistoryRepository, FreshHistory
from chat_outbox.application.ports.outbox import (
    EVERY_CONVERSATION,
    DeadSelector,
    NewOutboxMessage,
    OutboxRepository,
    OutboxStats,
    Shard,
)
from chat_outbox.application.ports.system import Clock, EventIds, Wakeups
from chat_outbox.application.ports.transaction import UnitOfWork, UnitOfWorkFactory

__all__ = [
    "EVERY_CONVERSATION",
    "ChatHistoryRepository",
    "Clock",
    "ConversationOwners",
    "DeadSelector",
    "EventIds",
    "FreshHistory",
    "IncomingRecord",
    "MessageBus",
    "MessageSource",
    "NewOutboxMessage",
    "OutboxRepository",
    "OutboxStats",
    "OutgoingRecord",
    "PublishResult",
    "RelayRoster",
    "Shard",
    "UnitOfWork",
    "UnitOfWorkFactory",
    "Wakeups",
]
