"""Request dependencies, injected from the app's container: `create_app` wires this module
(dependency-injector's `@inject` with `Provide[...]`), and the routes declare what they
need with the aliases at the bottom."""

from typing import Annotated

from dependency_injector.wiring import Provide, inject
from fastapi import Depends, Header

from chat_outbox.adapters.metrics import PrometheusMetrics
from chat_outbox.application.operate.health import Probe
from chat_outbox.application.ports import Clock, UnitOfWorkFactory
from chat_outbox.application.record.recording import RecordChatMessage
from chat_outbox.entrypoints.config import Settings
from chat_outbox.entrypoints.containers import ApiContainer
from chat_outbox.entrypoints.http.auth import Caller, authenticator_of

MAX_ID = 2**63 - 1
"""The largest id a BIGINT column holds; a larger one in a request is a 422, not a 500."""


@inject
async def uow(
    found: Annotated[UnitOfWorkFactory, Depends(Provide[ApiContainer.core.uow])],
) -> UnitOfWorkFactory:
    return found


@inject
async def record(
    found: Annotated[RecordChatMessage, Depends(Provide[ApiContainer.core.record])],
) -> RecordChatMessage:
    return found


@inject
def clock(found: Annotated[Clock, Depends(Provide[ApiContainer.core.clock])]) -> Clock:
    return found


@inject
def settings(found: Annotated[Settings, Depends(Provide[ApiContainer.settings])]) -> Settings:
    return found


@inject
def metrics(
    found: Annotated[PrometheusMetrics, Depends(Provide[ApiContainer.core.metrics])],
) -> PrometheusMetrics:
    return found


@inject
async def probes(
    database: Annotated[Probe, Depends(Provide[ApiContainer.database_probe])],
    bus: Annotated[Probe, Depends(Provide[ApiContainer.bus_probe])],
) -> dict[str, Probe]:
    """What readiness checks, by the name it reports."""
    return {"database": database, "bus": bus}


@inject
def configured(settings: Settings = Provide[ApiContainer.settings]) -> Settings:
    """The app's settings, for code that runs before FastAPI resolves any dependency."""
    return settings


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
Metrics = Annotated[PrometheusMetrics, Depends(metrics)]
Probes = Annotated[dict[str, Probe], Depends(probes)]
Calling = Annotated[Caller | None, Depends(caller)]
