"""Record a chat message as an outbox row, inside the caller's transaction."""

from __future__ import annotations

import json
from collections.abc import Callable

import attrs

from application.ports import Clock, EventIds, NewOutboxMessage, UnitOfWork, UnitOfWorkFactory
from application.tracing import LogContextOnly, Tracing
from domain import BIZ_TYPE_CHAT_HISTORY, DEFAULT_MAX_RETRY, ChatMessage, OutboxMessage


async def record_chat_message(
    uow: UnitOfWork,
    chat: ChatMessage,
    *,
    topic: str,
    clock: Clock,
    event_ids: EventIds,
    max_retry: int = DEFAULT_MAX_RETRY,
    traceparent: str | None = None,
) -> OutboxMessage:
    """Add the outbox row; the caller commits it together with its own business write.
    `traceparent` (W3C) travels with the message, so the consumer continues the trace."""
    payload = json.dumps(chat.to_payload(), ensure_ascii=False, separators=(",", ":"))
    return await uow.outbox.add(
        NewOutboxMessage(
            event_id=event_ids(),
            biz_type=BIZ_TYPE_CHAT_HISTORY,
            topic=topic,
            message_key=chat.conversation_id,
            payload=payload,
            max_retry=max_retry,
            created_at=clock.now(),
            traceparent=traceparent,
        )
    )


@attrs.frozen
class RecordChatMessage:
    """The standalone use case (CLI, HTTP): record one message in its own transaction."""

    uow: UnitOfWorkFactory
    clock: Clock
    event_ids: EventIds
    topic: str
    max_retry: int = DEFAULT_MAX_RETRY
    on_recorded: Callable[[], None] | None = None
    """Called after each commit: wakes a relay running in the same process."""
    tracing: Tracing = attrs.field(factory=LogContextOnly)

    async def __call__(self, chat: ChatMessage, traceparent: str | None = None) -> OutboxMessage:
        """Record in its own transaction, under `traceparent` or else the active trace."""
        async with self.uow() as uow:
            message = await record_chat_message(
                uow,
                chat,
                topic=self.topic,
                clock=self.clock,
                event_ids=self.event_ids,
                max_retry=self.max_retry,
                traceparent=traceparent or self.tracing.current(),
            )
            await uow.commit()
        if self.on_recorded is not None:
            self.on_recorded()
        return message
