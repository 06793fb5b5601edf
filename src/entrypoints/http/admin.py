"""Operator routes: stats, dead messages, requeue. Bearer token CHAT_OUTBOX_ADMIN_TOKEN."""

from __future__ import annotations

import hmac
import io
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from chat_outbox.application.operate import operations
from chat_outbox.application.ports import DeadSelector
from chat_outbox.domain import InvalidChatMessage
from chat_outbox.domain.chat import checked_conversation_id
from chat_outbox.entrypoints.audit import audited
from chat_outbox.entrypoints.commands import stats_document
from chat_outbox.entrypoints.http.deps import MAX_ID, Config, Now, Uow, configured
from chat_outbox.entrypoints.http.errors import InvalidField
from chat_outbox.entrypoints.http.strict_json import StrictJsonRoute

HTTP_USER = "http"
"""The audit lines' user for actions through the HTTP API: whoever holds the admin token."""


def require_admin(settings: Config, authorization: Annotated[str | None, Header()] = None) -> None:
    if not settings.http.admin_token:
        raise HTTPException(403, "admin routes are disabled: set CHAT_OUTBOX_ADMIN_TOKEN")
    scheme, _, token = (authorization or "").partition(" ")
    # compare_digest: the time taken does not reveal how much of a guess was right.
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), settings.http.admin_token.encode()
    ):
        raise HTTPException(
            401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"}
        )


class AdminRoute(StrictJsonRoute):
    """A route that checks the admin token before anything else: FastAPI reads and parses
    a body before it runs any dependency, so a caller without the token would cost that."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            require_admin(configured(), request.headers.get("authorization"))
            return await handler(request)

        return guarded


router = APIRouter(
    prefix="/v1/outbox",
    tags=["admin"],
    # The route class enforces the token; the dependency also documents it in OpenAPI.
    dependencies=[Depends(require_admin)],
    route_class=AdminRoute,
)


class Requeue(BaseModel):
    """Exactly one of: an outbox id, a conversation, or all."""

    model_config = ConfigDict(extra="forbid", strict=True)
    id: int | None = Field(default=None, ge=1, le=MAX_ID)
    conversation_id: str | None = None
    all: bool = False

    @field_validator("conversation_id")
    @classmethod
    def valid_conversation_id(cls, value: str | None) -> str | None:
        return None if value is None else _checked(value)

    @model_validator(mode="after")
    def exactly_one(self) -> Requeue:
        chosen = [self.id is not None, self.conversation_id is not None, self.all]
        if chosen.count(True) != 1:
            raise ValueError("give exactly one of id, conversation_id or all: true")
        return self


@router.get("/stats")
async def stats(uow: Uow, clock: Now) -> dict[str, object]:
    """Counts by status, the oldest pending and published ages, dead and held rows."""
    return stats_document(await operations.outbox_stats(uow), clock.now())


@router.get("/dead")
async def dead(
    uow: Uow,
    clock: Now,
    conversation_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, list[dict[str, Any]]]:
    """Dead messages with their last error, retry count, age, and the messages held
    behind each one's conversation."""
    if conversation_id is not None:
        try:
            checked_conversation_id(conversation_id)
        except InvalidChatMessage as error:
            raise InvalidField("query", error) from None
    rows = await operations.list_dead(uow, DeadSelector(conversation_id=conversation_id), limit)
    held = await operations.held_behind_dead(uow, sorted({m.message_key for m in rows}))
    now = clock.now()
    return {
        "dead": [
            {
                "id": message.id,
                "conversation_id": message.message_key,
                "retry_count": message.retry_count,
                "held_behind": held[message.message_key],
                "age_s": round((now - message.created_at).total_seconds(), 3),
                "last_error": message.last_error,
            }
            for message in rows
        ]
    }


@router.post("/dead/requeue")
async def requeue(body: Requeue, uow: Uow, clock: Now) -> dict[str, int]:
    """Dead messages back to pending, retries reset, oldest first."""
    selector = DeadSelector(outbox_id=body.id, conversation_id=body.conversation_id)
    # Audited like the CLI's requeue. The one shared admin token names nobody, so the user
    # is the door it came through; no progress is drawn (a server's stderr is its log).
    with audited("dead_requeue", selector.describe(), io.StringIO(), user=HTTP_USER) as progress:
        moved = await operations.requeue_dead(uow, clock, selector, progress=progress)
    return {"requeued": moved}


def _checked(conversation_id: str) -> str:
    try:
        return checked_conversation_id(conversation_id)
    except InvalidChatMessage as error:
        raise ValueError(str(error)) from None
