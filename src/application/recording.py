"""Record a chat message as an outbox row, inside the caller's transaction."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import attrs

from chat_outbox.application.errors import DuplicateEvent, IdempotencyConflict
from chat_outbox.application.ports import (
    Clock,
    EventIds,
    NewOutboxMessage,
    UnitOfWork,
    UnitOfWorkFactory,
)
from chat_outbox.application.tracing import LogContextOnly, Tracing
from chat_outbox.domain import BIZ_TYPE_CHAT_HISTORY, DEFAULT_MAX_RETRY, ChatMessage, OutboxMessage

IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1d8a52-3c1e-4c47-9a0b-0c2f5e9b7d31")


def idempotent_event_id(conversation_id: str, key: str) -> str:
    """The event id a client's idempotency key stands for, within its conversation."""
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{conversation_id}\x00{key}"))


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
    return await uow.outbox.add(
        NewOutboxMessage(
            event_id=event_ids(),
            biz_type=BIZ_TYPE_CHAT_HISTORY,
            topic=topic,
            message_key=chat.conversation_id,
            payload=payload_of(chat),
            max_retry=max_retry,
            created_at=clock.now(),
            traceparent=traceparent,
        )
    )


def payload_of(chat: ChatMessage) -> str:
    return json.dumps(chat.to_payload(), ensure_ascii=False, separators=(",", ":"))


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

    async def __call__(
        self, chat: ChatMessage, traceparent: str | None = None, event_id: str | None = None
    ) -> OutboxMessage:
        """Record in its own transaction, under `traceparent` or else the active trace."""
        async with self.uow() as uow:
            message = await record_chat_message(
                uow,
                chat,
                topic=self.topic,
                clock=self.clock,
                event_ids=self.event_ids if event_id is None else lambda: event_id,
                max_retry=self.max_retry,
                traceparent=traceparent or self.tracing.current(),
            )
            await uow.commit()
        if self.on_recorded is not None:
            self.on_recorded()
        return message

    async def once(
        self, chat: ChatMessage, event_id: str, traceparent: str | None = None
    ) -> tuple[OutboxMessage, bool]:
        """Record under a caller-chosen event id at most once, so a client may retry after
        a lost answer: a repeat of the same message returns the row recorded first (and
        True); another message under the same id raises IdempotencyConflict."""
        try:
            return await self(chat, traceparent, event_id), False
        except DuplicateEvent:
            pass
        async with self.uow() as uow:
            first = await uow.outbox.by_event_id(event_id)
        if first is None or (first.message_key, first.payload) != (
            chat.conversation_id,
            payload_of(chat),
        ):
            raise IdempotencyConflict(f"event {event_id} was recorded with another message")
        return first, True
