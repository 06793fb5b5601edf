"""Request dependencies: the container the app was made with, and what it provides."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Header, Request

from chat_outbox.application.ports import Clock, UnitOfWorkFactory
from chat_outbox.application.record.recording import RecordChatMessage
from chat_outbox.entrypoints.config import Settings
from chat_outbox.entrypoints.containers import ApiContainer
from chat_outbox.entrypoints.http.auth import Caller, authenticator_of

MAX_ID = 2**63 - 1
"""The largest id a BIGINT column holds; a larger one in a request is a 422, not a 500."""


async def resolved(provider: Callable[[], Any]) -> Any:
    """What a provider gives, whether it is sync or (through an async Resource) async."""
    value = provider()
    return await value if inspect.isawaitable(value) else value


def container(request: Request) -> ApiContainer:
    found: ApiContainer = request.app.state.container
    return found


Container = Annotated[ApiContainer, Depends(container)]


async def uow(container: Container) -> UnitOfWorkFactory:
    factory: UnitOfWorkFactory = await resolved(container.core.uow)
    return factory


async def record(container: Container) -> RecordChatMessage:
    use_case: RecordChatMessage = await resolved(container.core.record)
    return use_case


def clock(container: Container) -> Clock:
    found: Clock = container.core.clock()
    return found


def settings(container: Container) -> Settings:
    found: Settings = container.settings()
    return found


def caller(
    settings: Annotated[Settings, Depends(settings)],
    authorization: Annotated[str | None, Header()] = None,
) -> Caller | None:
    """The verified caller of a message route; None when authentication is off."""
    authenticator = authenticator_of(settings)
    return None if authenticator is None else authenticator.caller(authorization)


Uow = Annotated[UnitOfWorkFactory, Depends(uow)]
Record = Annotated[RecordChatMessage, Depends(record)]
Now = Annotated[Clock, Depends(clock)]
Config = Annotated[Settings, Depends(settings)]
Calling = Annotated[Caller | None, Depends(caller)]
