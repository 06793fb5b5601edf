"""Record a conversation's messages, and read its persisted history back."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import quote, unquote_to_bytes

import structlog
from fastapi import (
    APIRouter,
    Depends,
    Header,
    HTTPException,
    Path,
    Query,
    Request,
    Response,
    status,
)
from pydantic import BaseModel, ConfigDict, Field

from chat_outbox.application.errors import NotOwner
from chat_outbox.application.ports import UnitOfWorkFactory
from chat_outbox.application.record.recording import Claim, conversation_owner, idempotent_event_id
from chat_outbox.application.tracing import valid_traceparent
from chat_outbox.domain import ChatMessage, HistoryEntry, InvalidChatMessage
from chat_outbox.domain.chat import MAX_CONVERSATION_ID_LENGTH, checked_conversation_id
from chat_outbox.entrypoints.config import Settings
from chat_outbox.entrypoints.http.auth import SERVICE_ONLY_ROLES, Caller, forbidden
from chat_outbox.entrypoints.http.deps import MAX_ID, Calling, Config, Record, Uow
from chat_outbox.entrypoints.http.errors import InvalidField
from chat_outbox.entrypoints.http.strict_json import StrictJsonRoute

log = structlog.get_logger(__name__)
router = APIRouter(
    prefix="/v1/conversations/{conversation_id}/messages",
    tags=["messages"],
    route_class=StrictJsonRoute,
)
_RAW_CONVERSATION_ID = re.compile(rb"/conversations/([^/]*)/messages/?$")
MIN_ROWS_PER_READ = 8
"""A history page reads at least this many rows a query, however large messages may be."""


def path_conversation_id(
    request: Request,
    conversation_id: Annotated[
        str, Path(min_length=1, max_length=MAX_CONVERSATION_ID_LENGTH, description="the key")
    ],
) -> str:
    """The conversation id of the path, checked by the domain's rules. Its percent-encoded
    bytes must be UTF-8: the server would otherwise have decoded a bad byte to U+FFFD."""
    try:
        raw = _RAW_CONVERSATION_ID.search(request.scope.get("raw_path") or b"")
        if raw is not None:
            _utf8(unquote_to_bytes(raw[1]))
        return checked_conversation_id(conversation_id)
    except InvalidChatMessage as error:
        raise InvalidField("path", error) from None


def _utf8(data: bytes) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidChatMessage(
            f"conversation_id is not valid UTF-8: byte 0x{data[error.start]:02x} "
            f"at byte {error.start}"
        ) from None


ConversationId = Annotated[str, Depends(path_conversation_id)]


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
        description="pass as ?after= for the next page; null when this page is the last. "
        "A page ends at `limit` messages or at CHAT_OUTBOX_HTTP_MAX_RESPONSE_BYTES, "
        "whichever comes first; the Link header (rel=next) holds the same cursor."
    )


def no_such_conversation() -> HTTPException:
    # The same answer whether the conversation is another user's or nobody's.
    return HTTPException(404, "no such conversation")


def checked_claim(caller: Caller | None, body: NewMessage) -> Claim | None:
    """A user writes as itself, not as system or tool, in its own or a new conversation
    (which becomes its own); a service token writes anything, and a new conversation
    becomes the user's it writes for. Without authentication nothing is claimed."""
    if caller is None:
        return None
    if caller.service:
        return Claim(body.user_id, exclusive=False)
    if body.role in SERVICE_ONLY_ROLES:
        raise forbidden(f"the {body.role} role needs a service token")
    if body.user_id != caller.user_id:
        raise forbidden(
            "user_id must be the token's user; writing for another needs a service token"
        )
    return Claim(body.user_id)


def keyed_event_id(conversation_id: str, idempotency_key: str | None) -> str | None:
    """The event id an Idempotency-Key stands for; None without one."""
    if idempotency_key is None:
        return None
    try:
        return idempotent_event_id(conversation_id, idempotency_key)
    except InvalidChatMessage as error:
        raise InvalidField("header", InvalidChatMessage(f"Idempotency-Key: {error}")) from error


async def owner_of(uow_factory: UnitOfWorkFactory, conversation_id: str) -> int | None:
    async with uow_factory() as uow:
        return await conversation_owner(uow, conversation_id)


@router.post("", status_code=status.HTTP_202_ACCEPTED)
async def record_message(
    conversation_id: ConversationId,
    body: NewMessage,
    record: Record,
    settings: Config,
    response: Response,
    caller: Calling,
    traceparent: Annotated[str | None, Header()] = None,
    idempotency_key: Annotated[
        str | None,
        Header(description="repeat a request safely: the same key and message record once"),
    ] = None,
) -> Recorded:
    """Record one message in the outbox (one transaction); the relay and consumer persist
    it into history shortly after. A W3C `traceparent` header travels with it. With an
    `Idempotency-Key`, a retry of the same message answers 200 with the first recording,
    and the key reused for another message is a 409. With authentication on, see
    `checked_claim` for who may write what; another user's conversation is a 404."""
    claim = checked_claim(caller, body)
    try:
        chat = ChatMessage.create(
            user_id=body.user_id,
            conversation_id=conversation_id,
            role=body.role,
            message=body.message,
            max_message_bytes=settings.core.max_message_bytes,
        )
    except InvalidChatMessage as error:
        where = "path" if str(error).startswith("conversation_id") else "body"
        raise InvalidField(where, error) from None
    valid = valid_traceparent(traceparent)
    if traceparent is not None and valid is None:
        # W3C Trace Context: an invalid traceparent is ignored, never a reason to refuse.
        log.info("traceparent_ignored", traceparent=repr(traceparent[:64]))
    event_id = keyed_event_id(conversation_id, idempotency_key)
    try:
        if event_id is None:
            message, replayed = await record(chat, traceparent=valid, claim=claim), False
        else:
            message, replayed = await record.once(chat, event_id, traceparent=valid, claim=claim)
    except NotOwner:
        raise no_such_conversation() from None
    if replayed:
        response.status_code = status.HTTP_200_OK  # recorded by an earlier request
    return Recorded(outbox_id=message.id, event_id=message.event_id)


@router.get("")
async def read_history(
    conversation_id: ConversationId,
    uow: Uow,
    settings: Config,
    caller: Calling,
    response: Response,
    after: Annotated[int, Query(ge=0, le=MAX_ID, description="outbox id to start after")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> HistoryPage:
    """The persisted history in recording order, a page at a time: at most `limit`
    messages and about CHAT_OUTBOX_HTTP_MAX_RESPONSE_BYTES (never less than one message)."""
    if caller is not None and not caller.may_see(await owner_of(uow, conversation_id)):
        raise no_such_conversation()
    messages, next_after = await _page(uow, conversation_id, limit, after, settings)
    if next_after is not None:
        path = router.prefix.replace("{conversation_id}", quote(conversation_id, safe=""))
        response.headers["Link"] = f'<{path}?after={next_after}&limit={limit}>; rel="next"'
    return HistoryPage(conversation_id=conversation_id, messages=messages, next_after=next_after)


async def _page(
    uow_factory: UnitOfWorkFactory, conversation_id: str, limit: int, after: int, settings: Settings
) -> tuple[list[HistoryMessage], int | None]:
    """Up to `limit` messages after `after` within the byte budget, and the cursor of the
    next page (None when none follows)."""
    budget, largest = settings.http.max_response_bytes, max(settings.core.max_message_bytes, 1)
    messages: list[HistoryMessage] = []
    envelope = HistoryPage(conversation_id=conversation_id, messages=[], next_after=MAX_ID)
    size, cursor = len(envelope.model_dump_json().encode()), after
    async with uow_factory() as uow:
        while len(messages) < limit:
            # Rows per query from the budget left: a query never loads far past the page.
            rows = max(MIN_ROWS_PER_READ, (budget - size) // largest)
            rows = min(limit - len(messages), rows)
            entries = await uow.history.for_conversation(conversation_id, rows, cursor)
            for entry in entries:
                message = HistoryMessage.of(entry)
                cost = len(message.model_dump_json().encode()) + 1  # and its comma
                if messages and size + cost > budget:
                    return messages, cursor
                messages.append(message)
                size, cursor = size + cost, entry.outbox_id
            if len(entries) < rows:
                return messages, None
    return messages, cursor
