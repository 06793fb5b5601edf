"""Shared set-up of the dashboard tests: the API on a test engine, a logged-in client, and
messages recorded, relayed and killed the way the relay does it."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
from dependency_injector import providers
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.clock import SystemClock
from chat_outbox.adapters.memory import InMemoryBus
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.adapters.sql.claims import LeasedClaims
from chat_outbox.application.consume.consuming import Consumer
from chat_outbox.application.consume.persisting import UnitOfWorkHistoryWriter
from chat_outbox.application.relay.relaying import Relay
from chat_outbox.domain import PublishFailure, RetryPolicy
from chat_outbox.entrypoints.config import Settings
from chat_outbox.entrypoints.containers import ApiContainer
from chat_outbox.entrypoints.http import create_app
from tests.integration.relays import leasing_relay

ADMIN_TOKEN = "dashboard-admin-token"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE_URL = "https://traces.example/trace/{trace_id}"
HOSTILE = (
    "<script>window.__pwned = 1</script>",
    '"><img src=x onerror="window.__pwned = 2">',
    "</textarea><svg onload=alert(1)>",
    "{{ 7*7 }} ' \" & <b>bold</b>",
)
CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')
NONCE = re.compile(r'name="nonce" value="([^"]+)"')


def dashboard_container(engine: AsyncEngine, **overrides: object) -> ApiContainer:
    url = engine.url.render_as_string(hide_password=False)
    values = {
        "database_url": url,
        "admin_token": ADMIN_TOKEN,
        "admin_trace_url": TRACE_URL,
        "bus": "memory",
        **overrides,
    }
    container = ApiContainer(settings=Settings.of(**values))
    container.core.engine.override(providers.Object(engine))
    return container


def asgi_client(container: ApiContainer) -> httpx.AsyncClient:
    """A client of the app over ASGI, as if it came over loopback HTTP."""
    transport = httpx.ASGITransport(app=create_app(container), client=("127.0.0.1", 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")


async def log_in(client: httpx.AsyncClient, token: str = ADMIN_TOKEN) -> httpx.Response:
    form = await client.get("/admin/login")
    nonce = NONCE.search(form.text)
    assert nonce, form.text
    return await client.post("/admin/login", data={"nonce": nonce[1], "token": token})


async def csrf_of(client: httpx.AsyncClient) -> str:
    found = CSRF.search((await client.get("/admin")).text)
    assert found
    return found[1]


async def post_message(
    client: httpx.AsyncClient, conversation: str, text: str, traceparent: str | None = None
) -> int:
    headers = {"traceparent": traceparent} if traceparent else {}
    response = await client.post(
        f"/v1/conversations/{conversation}/messages",
        json={"user_id": 7, "role": "user", "message": text},
        headers=headers,
    )
    assert response.status_code == 202, response.text
    outbox_id: int = response.json()["outbox_id"]
    return outbox_id


async def relay_all(uow: SqlUnitOfWorkFactory, bus: InMemoryBus) -> None:
    relay = leasing_relay(uow, bus, SystemClock())
    while (await relay.relay_due()).claimed:
        pass


async def consume_all(uow: SqlUnitOfWorkFactory, bus: InMemoryBus) -> None:
    await Consumer(bus, UnitOfWorkHistoryWriter(uow), SystemClock()).consume_batch(timeout=0)


async def kill(uow: SqlUnitOfWorkFactory, reason: str = "MessageSizeTooLarge: 2 MiB") -> None:
    """Every due row dies the way the relay kills one: a fatal publish failure."""
    await relay_all(uow, InMemoryBus(fail_with=lambda record: PublishFailure.fatal(reason)))


async def fail_once(uow: SqlUnitOfWorkFactory, reason: str) -> None:
    """One relay round in which every due row fails to publish, retryably, with `reason`;
    a backoff of zero leaves the rows due again at once."""
    bus = InMemoryBus(fail_with=lambda record: PublishFailure(reason))
    claims = LeasedClaims(uow, SystemClock(), timedelta(seconds=60))
    await Relay(claims, bus, SystemClock(), RetryPolicy(rand=lambda: 0.0)).relay_due()
    await claims.stop()  # hands back the rows it claimed ahead, due again at once
