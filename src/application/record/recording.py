"""Record a chat message as an outbox row, inside the caller's transaction."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import datetime

import attrs

from chat_outbox.application.errors import DuplicateEvent, IdempotencyConflict, NotOwner
from chat_outbox.application.ports import (
    Clock,
    EventIds,
    NewOutboxMessage,
    OutboxRepository,
    UnitOfWork,
    UnitOfWorkFactory,
)
from chat_outbox.application.tracing import LogContextOnly, Tracing
from chat_outbox.domain import (
    BIZ_TYPE_CHAT_HISTORY,
    DEFAULT_MAX_RETRY,
    ChatMessage,
    Event,
    EventType,
    InvalidChatMessage,
    OutboxMessage,
)
from chat_outbox.domain.events import checked_key

IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1d8a52-3c1e-4c47-9a0b-0c2f5e9b7d31")


IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")


def idempotent_event_id(conversation_id: str, key: str) -> str:
    """The event id a client's idempotency key stands for, within its conversation."""
    if not isinstance(key, str) or not IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidChatMessage("an idempotency key must be 1-255 visible ASCII characters")
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
        chat_row(
            chat,
            event_id=event_ids(),
            topic=topic,
            created_at=clock.now(),
            max_retry=max_retry,
            traceparent=traceparent,
        )
    )


def chat_row(
    chat: ChatMessage,
    *,
    event_id: str,
    topic: str,
    created_at: datetime,
    max_retry: int = DEFAULT_MAX_RETRY,
    traceparent: str | None = None,
) -> NewOutboxMessage:
    """The outbox row that carries one chat message, keyed by its conversation."""
    return NewOutboxMessage(
        event_id=event_id,
        biz_type=BIZ_TYPE_CHAT_HISTORY,
        topic=topic,
        message_key=chat.conversation_id,
        payload=payload_of(chat),
        max_retry=max_retry,
        created_at=created_at,
        traceparent=traceparent,
    )


async def add_once(outbox: OutboxRepository, row: NewOutboxMessage) -> tuple[OutboxMessage, bool]:
    """Add `row` unless its event id is recorded already; True when it was. Looks first
    rather than inserting and catching the conflict: inside a caller's transaction a
    failed INSERT aborts the whole transaction on PostgreSQL."""
    first = await outbox.by_event_id(row.event_id)
    if first is None:
        return await outbox.add(row), False
    return _same_recording(first, row.message_key, row.payload), True


def _same_recording(first: OutboxMessage, key: str, payload: str) -> OutboxMessage:
    """The first recording under an event id, when it carried the same message."""
    if (first.message_key, first.payload) != (key, payload):
        raise IdempotencyConflict(f"event {first.event_id} was recorded with another message")
    return first


def event_row(
    kind: EventType,
    event: Event,
    *,
    event_id: str,
    topic: str,
    created_at: datetime,
    max_retry: int = DEFAULT_MAX_RETRY,
    traceparent: str | None = None,
) -> NewOutboxMessage:
    """The outbox row of an event of a registered type, under its key, on its type's topic
    (or `topic`); InvalidEvent when the key or payload breaks the type's rules."""
    return NewOutboxMessage(
        event_id=event_id,
        biz_type=kind.name,
        topic=kind.topic or topic,
        message_key=checked_key(event.key),
        payload=kind.payload_text(event.payload),
        max_retry=max_retry,
        created_at=created_at,
        traceparent=traceparent,
    )


def payload_of(chat: ChatMessage) -> str:
    return json.dumps(chat.to_payload(), ensure_ascii=False, separators=(",", ":"))


@attrs.frozen
class Claim:
    """A record's ownership step, in the record's own transaction: a new conversation
    becomes `user_id`'s, and with `exclusive` the record is refused (NotOwner) when the
    conversation is another user's.

    Only the callers that check ownership claim (the HTTP API with authentication on): a
    claim on every record would cost a query on the hot path of trusted callers (CLI
    `send`, library `Outbox.record`, `serve` without authentication), whose conversations
    stay unclaimed until their first checked write, which then claims them."""

    user_id: int
    exclusive: bool = True


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
        self,
        chat: ChatMessage,
        traceparent: str | None = None,
        event_id: str | None = None,
        claim: Claim | None = None,
    ) -> OutboxMessage:
        """Record in its own transaction, under `traceparent` or else the active trace,
        after the `claim` of its conversation if one is given."""
        async with self.uow() as uow:
            if claim is not None:
                await claim_conversation(uow, chat, claim, self.clock)
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
        self,
        chat: ChatMessage,
        event_id: str,
        traceparent: str | None = None,
        claim: Claim | None = None,
    ) -> tuple[OutboxMessage, bool]:
        """Record under a caller-chosen event id at most once, so a client may retry after
        a lost answer: a repeat of the same message returns the row recorded first (and
        True); another message under the same id raises IdempotencyConflict. The claim
        comes first: a writer refused NotOwner learns nothing of the conversation's rows."""
        try:
            return await self(chat, traceparent, event_id, claim), False
        except DuplicateEvent:
            pass
        async with self.uow() as uow:
            first = await uow.outbox.by_event_id(event_id)
        if first is None:
            raise IdempotencyConflict(f"event {event_id} was recorded with another message")
        return _same_recording(first, chat.conversation_id, payload_of(chat)), True


async def claim_conversation(
    uow: UnitOfWork, chat: ChatMessage, claim: Claim, clock: Clock
) -> None:
    """Claim the message's conversation; NotOwner if the claim is exclusive and the
    conversation is another user's. A conversation recorded without a claim (by a trusted
    caller) is claimed for the user of its first message, never for a later writer."""
    conversation = chat.conversation_id
    owner = await uow.owners.owner_of(conversation)
    if owner is None:
        first = await first_writer(uow, conversation)
        owner = await uow.owners.claim(
            conversation, claim.user_id if first is None else first, clock.now()
        )
    if claim.exclusive and owner != claim.user_id:
        raise NotOwner(f"conversation {conversation!r} belongs to another user")


async def conversation_owner(uow: UnitOfWork, conversation_id: str) -> int | None:
    """Who may read the conversation: its claimed owner, else the user of its first
    recorded message; None when it has no message."""
    owner = await uow.owners.owner_of(conversation_id)
    return owner if owner is not None else await first_writer(uow, conversation_id)


async def first_writer(uow: UnitOfWork, conversation_id: str) -> int | None:
    """The user of the conversation's first message (the lowest outbox id), whether it is
    in history, still in the outbox, or both; NOBODY when that row cannot be read."""
    persisted = await uow.history.for_conversation(conversation_id, 1)
    pending = await uow.outbox.first_of(conversation_id)
    firsts = [(entry.outbox_id, entry.user_id) for entry in persisted]
    if pending is not None:
        firsts.append((pending.id, _user_of(pending.payload)))
    return min(firsts)[1] if firsts else None


NOBODY = 0
"""The owner of a conversation whose first row cannot be read: no user id matches it."""


def _user_of(payload: str) -> int:
    try:
        return ChatMessage.from_payload(json.loads(payload)).user_id
    except (ValueError, RecursionError, InvalidChatMessage):
        return NOBODY
