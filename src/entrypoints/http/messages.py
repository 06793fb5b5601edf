"""Record a conversation's messages, and read its persisted history back."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field

from application import operations
from application.tracing import valid_traceparent
from domain import ChatMessage, HistoryEntry, InvalidChatMessage
from domain.chat import MAX_CONVERSATION_ID_LENGTH
from entrypoints.http.deps import Config, Record, Uow
from entrypoints.http.errors import InvalidField

router = APIRouter(prefix="/v1/conversations/{conversation_id}/messages", tags=["messages"])
ConversationId = Annotated[
    str, Path(min_length=1, max_length=MAX_CONVERSATION_ID_LENGTH, description="the key")
]


class NewMessage(BaseModel):
    """The domain checks the values (role, sizes, characters); this checks the shape."""

    model_config = ConfigDict(extra="forbid", strict=True)
    user_id: int
    role: str = Field(examples=["user"])
    message: str


class Recorded(BaseModel):
    outbox_id: int
    event_id: str
    status: str = "pending"


class HistoryMessage(BaseModel):
    outbox_id: int
    event_id: str
    user_id: int
    role: str
    message: str
    recorded_at: str

    @classmethod
    def of(cls, entry: HistoryEntry) -> HistoryMessage:
        return cls(
            outbox_id=entry.outbox_id,
            event_id=entry.event_id,
            user_id=entry.user_id,
            role=entry.role.value,
            message=entry.message,
            recorded_at=entry.recorded_at.isoformat(),
        )


class HistoryPage(BaseModel):
    conversation_id: str
    messages: list[HistoryMessage]
    next_after: int | None = Field(
        description="pass as ?after= for the next page; null when this page is the last"
    )


@router.post("", status_code=status.HTTP_202_ACCEPTED)
async def record_message(
    conversation_id: ConversationId,
    body: NewMessage,
    record: Record,
    settings: Config,
    traceparent: Annotated[str | None, Header()] = None,
) -> Recorded:
    """Record one message in the outbox (one transaction); the relay and consumer persist
    it into history shortly after. A W3C `traceparent` header travels with it."""
    try:
        chat = ChatMessage.create(
            user_id=body.user_id,
            conversation_id=conversation_id,
            role=body.role,
            message=body.message,
            max_message_bytes=settings.max_message_bytes,
        )
    except InvalidChatMessage as error:
        where = "path" if str(error).startswith("conversation_id") else "body"
        raise InvalidField(where, error) from None
    message = await record(chat, traceparent=valid_traceparent(traceparent))
    return Recorded(outbox_id=message.id, event_id=message.event_id)


@router.get("")
async def read_history(
    conversation_id: ConversationId,
    uow: Uow,
    after: Annotated[int, Query(ge=0, description="outbox id to start after")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> HistoryPage:
    """The persisted history in recording order, a page at a time."""
    entries = await operations.read_history(uow, conversation_id, limit, after)
    return HistoryPage(
        conversation_id=conversation_id,
        messages=[HistoryMessage.of(entry) for entry in entries],
        next_after=entries[-1].outbox_id if len(entries) == limit else None,
    )
