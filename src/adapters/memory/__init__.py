"""In-memory adapters for every port: fakes with inspectable state, and a bus for one process."""

from chat_outbox.adapters.memory.bus import InMemoryBus
from chat_outbox.adapters.memory.owners import InMemoryConversationOwners
from chat_outbox.adapters.memory.store import (
    InMemoryChatHistoryRepository,
    InMemoryOutboxRepository,
    InMemoryStore,
    InMemoryUnitOfWork,
)

__all__ = [
    "InMemoryBus",
    "InMemoryChatHistoryRepository",
    "InMemoryConversationOwners",
    "InMemoryOutboxRepository",
    "InMemoryStore",
    "InMemoryUnitOfWork",
]
