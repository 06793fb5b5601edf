"""The HTTP API over real HTTP: uvicorn on a loopback port, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from dependency_injector import providers
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from chat_outbox.adapters.clock import SystemClock
from chat_outbox.adapters.memory import InMemoryBus
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.application.consume.consuming import Consumer
from chat_outbox.application.consume.persisting import UnitOfWorkHistoryWriter
from chat_outbox.application.metrics import Metrics
from chat_outbox.domain import PublishFailure
from chat_outbox.entrypoints.config import Settings
from chat_outbox.entrypoints.containers import ApiContainer, resources
from tests.integration.http_helpers import ADMIN, ADMIN_TOKEN, free_port, serving
from tests.integration.kafka_helpers import count_by_status, on_sqlite_and_postgresql
from tests.integration.relays import leasing_relay

pytestmark = pytest.mark.integration


def container_on(engine: AsyncEngine, **overrides: object) -> ApiContainer:
    """The API on the test's engine; the memory bus (always ready) unless overridden."""
    url = engine.url.render_as_string(hide_password=False)
    settings = {"database_url": url, "admin_token": ADMIN_TOKEN, "bus": "memory", **overrides}
    container = ApiContainer(settings=Settings.of(**settings))
    container.core.engine.override(providers.Object(engine))
    return container


@pytest.fixture
def container(engine: AsyncEngine) -> ApiContainer:
    return container_on(engine)


@pytest.fixture
async def client(container: ApiContainer) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(container) as client:
        yield client


async def post(client: httpx.AsyncClient, conversation: str, text: str) -> int:
    response = await client.post(
        f"/v1/conversations/{conversation}/messages",
        json={"user_id": 7, "role": "user", "message": text},
    )
    assert response.status_code == 202, response.text
    outbox_id: int = response.json()["outbox_id"]
    return outbox_id


async def deliver(
    uow: SqlUnitOfWorkFactory, bus: InMemoryBus, metrics: Metrics | None = None
) -> None:
    """Relay everything due (a round per message of a conversation), then consume it."""
    extra = {} if metrics is None else {"metrics": metrics}
    relay = leasing_relay(uow, bus, SystemClock(), **extra)  # type: ignore[arg-type]
    while (await relay.relay_due()).claimed:
        pass
    consumer = Consumer(bus, UnitOfWorkHistoryWriter(uow), SystemClock(), **extra)  # type: ignore[arg-type]
    await consumer.consume_batch(timeout=0)


@on_sqlite_and_postgresql
async def test_posted_messages_are_read_back_over_http_in_order_a_page_at_a_time(
    client: httpx.AsyncClient, uow: SqlUnitOfWorkFactory
) -> None:
    """Messages POSTed to two conversations, once relayed and consumed, page back in
    recording order for each conversation."""
    texts = [f"message {n} ✓" for n in range(5)]
    for text in texts:
        await post(client, "http-a", text)
        await post(client, "http-b", text.upper())
    await deliver(uow, InMemoryBus())

    pages, after = [], 0
    while after is not None:
        page = (
            await client.get(
                "/v1/conversations/http-a/messages", params={"after": after, "limit": 2}
            )
        ).json()
        pages.append([m["message"] for m in page["messages"]])
        after = page["next_after"]
    assert pages == [texts[0:2], texts[2:4], texts[4:5]]


@on_sqlite_and_postgresql
async def test_dead_messages_are_listed_and_requeued_over_http(
    client: httpx.AsyncClient, uow: SqlUnitOfWorkFactory, engine: AsyncEngine
) -> None:
    """A message that failed fatally is listed with its error; requeueing its conversation
    returns it and the message held behind it to pending, in order."""
    first = await post(client, "http-dead", "too big, say")
    bus = InMemoryBus(fail_with=lambda record: PublishFailure.fatal("MessageSizeTooLarge"))
    await deliver(uow, bus)
    await post(client, "http-dead", "held behind")

    dead = (await client.get("/v1/outbox/dead", headers=ADMIN)).json()["dead"]
    assert [(d["id"], d["last_error"], d["held_behind"]) for d in dead] == [
        (first, "MessageSizeTooLarge", 1)
    ]
    requeue = await client.post(
        "/v1/outbox/dead/requeue", json={"conversation_id": "http-dead"}, headers=ADMIN
    )
    assert requeue.json() == {"requeued": 1}
    assert await count_by_status(engine) == {"pending": 2}
    await deliver(uow, InMemoryBus())
    history = (await client.get("/v1/conversations/http-dead/messages")).json()["messages"]
    assert [m["message"] for m in history] == ["too big, say", "held behind"]


@on_sqlite_and_postgresql
async def test_metrics_scraped_after_a_run_show_its_figures(
    client: httpx.AsyncClient, container: ApiContainer, uow: SqlUnitOfWorkFactory
) -> None:
    """After three messages are posted, relayed and consumed, /metrics reports three
    consumed rows, three publish and end-to-end latencies, and three accepted POSTs."""
    for n in range(3):
        await post(client, f"http-metrics-{n}", "hi")
    await deliver(uow, InMemoryBus(), container.core.metrics())

    text = (await client.get("/metrics")).text
    route = "/v1/conversations/{conversation_id}/messages"
    assert sample(text, 'chat_outbox_rows{status="consumed"}') == 3
    assert sample(text, 'chat_outbox_rows{status="pending"}') == 0
    assert sample(text, "chat_outbox_oldest_pending_age_seconds") == 0
    assert sample(text, "chat_outbox_publish_latency_seconds_count") == 3
    assert sample(text, "chat_outbox_end_to_end_latency_seconds_count") == 3
    assert 0 < sample(text, "chat_outbox_end_to_end_latency_seconds_sum") < 30
    assert (
        sample(
            text, f'chat_outbox_http_requests_total{{method="POST",route="{route}",status="202"}}'
        )
        == 3
    )


def sample(exposition: str, series: str) -> float:
    match = re.search(rf"^{re.escape(series)} (\S+)$", exposition, re.MULTILINE)
    assert match, f"{series} not in the scrape"
    return float(match[1])


@on_sqlite_and_postgresql
async def test_readyz_names_an_unreachable_bus(engine: AsyncEngine) -> None:
    """With the database up and the Kafka bootstrap refusing connections, readiness is 503
    and names the bus."""
    container = container_on(
        engine, bus="kafka", kafka_bootstrap_servers=f"127.0.0.1:{free_port()}"
    )
    async with serving(container) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["bus"] != "ok"


@pytest.mark.parametrize("migrated_engine", ["sqlite"], indirect=True)
async def test_readyz_names_an_unreachable_rabbitmq_without_its_password(
    engine: AsyncEngine,
) -> None:
    """With bus=rabbitmq and nothing listening, readiness is 503 naming the bus, and the
    reason carries no password; with the local RabbitMQ it is ready."""
    down = f"amqp://guest:rabbit-s3cret@127.0.0.1:{free_port()}/"
    async with serving(container_on(engine, bus="rabbitmq", rabbitmq_url=down)) as client:
        refused = await client.get("/readyz")
    async with serving(container_on(engine, bus="rabbitmq")) as client:
        ready = await client.get("/readyz")
    assert refused.status_code == 503
    assert refused.json()["checks"]["bus"] != "ok"
    assert "rabbit-s3cret" not in refused.text
    assert ready.status_code == 200, ready.text


async def test_readyz_names_an_unreachable_database() -> None:
    """With the database refusing connections, readiness is 503 with the database
    `unavailable`; the reason, with no password, goes to a warning log line only."""
    url = "postgresql+asyncpg://chat:s3cret-pw@127.0.0.1:1/chat"
    container = ApiContainer(settings=Settings.of(database_url=url, bus="memory"))
    with capture_logs() as logs:
        async with resources(container), serving(container) as client:
            response = await client.get("/readyz")
            healthz = await client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "unavailable", "bus": "ok"}
    assert "127.0.0.1" not in response.text
    [logged] = [line for line in logs if line["event"] == "readiness_check_failed"]
    assert logged["reason"].startswith("StoreUnavailable: database unavailable")
    assert "s3cret-pw" not in str(logged)
    assert healthz.status_code == 200


@pytest.mark.parametrize("migrated_engine", ["sqlite"], indirect=True)
async def test_the_serve_command_answers_and_stops_cleanly_on_sigterm(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """`chat-outbox serve --port P` binds loopback, records a POST, and exits 0 on SIGTERM."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("CHAT_OUTBOX_")}
    env["CHAT_OUTBOX_DATABASE_URL"] = engine.url.render_as_string(hide_password=False)
    env["CHAT_OUTBOX_LOG_FORMAT"] = "json"
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chat_outbox", "serve", "--port", str(port),
            env=env, stdout=output, stderr=output,
        )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            await until_up(client, process, log)
            outbox_id = await post(client, "http-serve", "over a real socket")
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 15) == 0, text_of(log)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert outbox_id > 0
    assert await count_by_status(engine) == {"pending": 1}
    assert '"api_stopped"' in text_of(log)


async def until_up(
    client: httpx.AsyncClient, process: asyncio.subprocess.Process, log: Path
) -> None:
    for _ in range(300):
        if process.returncode is not None:
            pytest.fail(f"serve exited with {process.returncode}: {text_of(log)}")
        try:
            if (await client.get("/healthz")).status_code == 200:
                return
        except httpx.TransportError:
            await asyncio.sleep(0.05)
    pytest.fail(f"serve did not answer within 15 s: {text_of(log)}")


def text_of(log: Path) -> str:
    return log.read_text()
