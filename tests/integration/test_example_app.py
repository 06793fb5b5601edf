"""The FastAPI example (examples/fastapi_app) end to end: its lifespan migrates and runs the
relay and consumer against the real broker, and each request's business row and outbox row
commit or roll back together, on SQLite and on a PostgreSQL database of its own."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import URL, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chat_outbox import Settings
from chat_outbox.adapters.sql.tables import chat_history, outbox_messages
from examples.fastapi_app.app import create_app
from examples.fastapi_app.models import AgentRun
from tests.integration.databases import url_for
from tests.integration.kafka_helpers import fast_kafka_settings, unique_names

pytestmark = pytest.mark.integration

HISTORY_WITHIN_S = 30.0


async def _recreate_postgres_database(url: URL, *, create: bool) -> None:
    """Drop the database (FORCE, PostgreSQL 13+: closing any connection left on it), then
    create it if asked."""
    admin = create_async_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
            if create:
                await connection.execute(text(f'CREATE DATABASE "{url.database}"'))
    finally:
        await admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database for one test: a SQLite file in tmp_path, or a PostgreSQL database
    of its own (the suite's test database name + `_example`), dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'example_app.sqlite3'}"
        return
    suite_url = make_url(url_for("postgresql", tmp_path))
    url = suite_url.set(database=f"{suite_url.database}_example")
    try:
        await _recreate_postgres_database(url, create=True)
    except Exception as error:  # noqa: BLE001 - turn a missing server into a clear failure
        pytest.fail(
            f"postgresql is not usable at {url.host}:{url.port}: {error}. "
            "Run `make services` to start the local databases."
        )
    yield url.render_as_string(hide_password=False)
    await _recreate_postgres_database(url, create=False)


@pytest.fixture(params=["kafka", "rabbitmq"])
def settings(request: pytest.FixtureRequest, database_url: str) -> Settings:
    """chat-outbox on the test's database and each real broker, with a topic (and consumer
    group) of its own; on Kafka, the short group timeouts that keep the join near 3 s."""
    if request.param == "rabbitmq":
        topic, _ = unique_names("example")
        return Settings.of(
            database_url=database_url,
            bus="rabbitmq",
            rabbitmq_url=request.getfixturevalue("rabbitmq_url"),
            topic=topic,
        )
    return fast_kafka_settings(
        database_url,
        request.getfixturevalue("kafka_bootstrap"),
        "example",
        kafka_topic_partitions=2,
        kafka_request_timeout_ms=5000,
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The example app in-process, inside its lifespan (migrations, relay and consumer)."""
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://example.test") as client,
    ):
        yield client


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[AsyncEngine]:
    """A connection pool of the test's own, to look at the tables behind the app's back."""
    engine = create_async_engine(database_url)
    yield engine
    await engine.dispose()


def new_conversation() -> str:
    return f"example-{uuid.uuid4().hex[:12]}"


async def post_message(
    client: httpx.AsyncClient,
    conversation_id: str,
    message: str,
    *,
    user_id: int = 7,
    headers: dict[str, str] | None = None,
    fail_after_record: bool = False,
) -> httpx.Response:
    return await client.post(
        f"/conversations/{conversation_id}/messages",
        json={"user_id": user_id, "message": message},
        headers=headers,
        params={"fail_after_record": "true"} if fail_after_record else None,
    )


async def agent_runs(engine: AsyncEngine, conversation_id: str) -> list[tuple[Any, ...]]:
    """The conversation's agent_runs rows as (id, user_id, prompt, event_id)."""
    query = (
        select(AgentRun.id, AgentRun.user_id, AgentRun.prompt, AgentRun.event_id)
        .where(AgentRun.conversation_id == conversation_id)
        .order_by(AgentRun.id)
    )
    async with engine.connect() as connection:
        return [tuple(row) for row in await connection.execute(query)]


async def outbox_rows(engine: AsyncEngine, conversation_id: str) -> list[dict[str, Any]]:
    """The conversation's outbox rows (chat-outbox keys each by its conversation)."""
    query = (
        select(outbox_messages)
        .where(outbox_messages.c.message_key == conversation_id)
        .order_by(outbox_messages.c.id)
    )
    async with engine.connect() as connection:
        return [dict(row) for row in (await connection.execute(query)).mappings()]


async def stored_anywhere(engine: AsyncEngine, event_id: str) -> list[str]:
    """The tables, of the app's and chat-outbox's, that hold a row for `event_id`."""
    tables = {
        "agent_runs": select(AgentRun.id).where(AgentRun.event_id == event_id),
        outbox_messages.name: select(outbox_messages.c.id).where(
            outbox_messages.c.event_id == event_id
        ),
        chat_history.name: select(chat_history.c.id).where(chat_history.c.event_id == event_id),
    }
    async with engine.connect() as connection:
        return [name for name, query in tables.items() if await connection.scalar(query)]


async def history(client: httpx.AsyncClient, conversation_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/conversations/{conversation_id}/history")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["conversation_id"] == conversation_id
    messages: list[dict[str, Any]] = body["messages"]
    return messages


async def history_of_at_least(
    client: httpx.AsyncClient, conversation_id: str, count: int
) -> list[dict[str, Any]]:
    """GET the conversation's history until it holds `count` messages (fail after 30 s)."""
    deadline = time.monotonic() + HISTORY_WITHIN_S
    while len(messages := await history(client, conversation_id)) < count:
        if time.monotonic() >= deadline:
            pytest.fail(
                f"history of {conversation_id} held {messages} after {HISTORY_WITHIN_S:.0f} s, "
                f"expected {count} messages"
            )
        await asyncio.sleep(0.2)
    return messages


def summary(message: dict[str, Any]) -> tuple[Any, ...]:
    return (message["event_id"], message["outbox_id"], message["user_id"], message["role"])


async def test_a_request_commits_its_run_and_its_message_which_reaches_history(
    client: httpx.AsyncClient, database: AsyncEngine
) -> None:
    """A successful request commits its agent_runs row and its outbox row together, and the
    running relay and consumer carry the message into the history the app serves."""
    conversation = new_conversation()

    response = await post_message(client, conversation, "Plan a weekend in Zürich 🏔")

    assert response.status_code == 201, response.text
    created = response.json()
    assert created["replayed"] is False
    assert await agent_runs(database, conversation) == [
        (created["run_id"], 7, "Plan a weekend in Zürich 🏔", created["event_id"])
    ]
    rows = await outbox_rows(database, conversation)
    assert [(row["id"], row["event_id"]) for row in rows] == [
        (created["outbox_id"], created["event_id"])
    ]
    assert rows[0]["status"] in ("pending", "published", "consumed")

    messages = await history_of_at_least(client, conversation, 1)
    assert [summary(m) for m in messages] == [
        (created["event_id"], created["outbox_id"], 7, "user")
    ]
    assert messages[0]["message"] == "Plan a weekend in Zürich 🏔"
    [row] = await outbox_rows(database, conversation)
    assert row["status"] == "consumed"


async def test_a_request_failing_after_record_rolls_back_the_run_and_the_outbox_row(
    client: httpx.AsyncClient, database: AsyncEngine
) -> None:
    """A request that fails after Outbox.record but before the commit leaves neither its
    agent_runs row nor its outbox row, and its message never reaches history."""
    conversation = new_conversation()

    failed = await post_message(client, conversation, "never committed", fail_after_record=True)

    assert failed.status_code == 500, failed.text
    lost_event = failed.json()["event_id"]  # Outbox.record had returned it: it did record
    assert await agent_runs(database, conversation) == []
    assert await outbox_rows(database, conversation) == []
    assert await stored_anywhere(database, lost_event) == []

    # A later message of the same conversation gets through: once it is in history, the
    # pipeline has carried everything recorded before it, and the lost one is not there.
    committed = await post_message(client, conversation, "committed")
    assert committed.status_code == 201, committed.text
    messages = await history_of_at_least(client, conversation, 1)
    assert [(m["event_id"], m["message"]) for m in messages] == [
        (committed.json()["event_id"], "committed")
    ]
    assert [run[2] for run in await agent_runs(database, conversation)] == ["committed"]
    assert len(await outbox_rows(database, conversation)) == 1
    assert await stored_anywhere(database, lost_event) == []


async def test_an_idempotency_key_records_once_and_refuses_another_message(
    client: httpx.AsyncClient, database: AsyncEngine
) -> None:
    """The same Idempotency-Key and message sent twice record one run and one outbox row
    (the retry answers 200 with the first), and the key reused for another message is a 409."""
    conversation = new_conversation()
    key = {"Idempotency-Key": f"retry-{uuid.uuid4().hex}"}

    first = await post_message(client, conversation, "book a table", headers=key)
    retry = await post_message(client, conversation, "book a table", headers=key)
    other = await post_message(client, conversation, "cancel the table", headers=key)

    assert first.status_code == 201, first.text
    assert retry.status_code == 200, retry.text
    assert retry.json() == {**first.json(), "replayed": True}
    assert other.status_code == 409, other.text
    assert await agent_runs(database, conversation) == [
        (first.json()["run_id"], 7, "book a table", first.json()["event_id"])
    ]
    assert [row["id"] for row in await outbox_rows(database, conversation)] == [
        first.json()["outbox_id"]
    ]
    messages = await history_of_at_least(client, conversation, 1)
    assert [(m["event_id"], m["message"]) for m in messages] == [
        (first.json()["event_id"], "book a table")
    ]


async def run_status(client: httpx.AsyncClient, run_id: int) -> dict[str, Any]:
    response = await client.get(f"/runs/{run_id}")
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run


async def test_a_finished_run_records_two_event_types_which_the_consumer_handles_in_order(
    client: httpx.AsyncClient, database: AsyncEngine, settings: Settings
) -> None:
    """The answer (a chat message) and agent_run.finished (the app's own type, sharing the
    conversation's key, on a topic of its own) commit together; the consumer reads both
    topics, persists the answer, and its handler marks the run finished, its write
    committed with the event's consumed mark."""
    conversation = new_conversation()
    created = (await post_message(client, conversation, "What is 6 x 7?")).json()
    run_id = created["run_id"]

    response = await client.post(f"/runs/{run_id}/finish", json={"answer": "42", "tokens": 9})

    assert response.status_code == 202, response.text
    finished = response.json()
    deadline = time.monotonic() + HISTORY_WITHIN_S
    while (run := await run_status(client, run_id))["status"] != "finished":
        if time.monotonic() >= deadline:
            pytest.fail(f"run {run_id} still {run} after {HISTORY_WITHIN_S:.0f} s")
        await asyncio.sleep(0.2)
    assert run == {
        "run_id": run_id,
        "conversation_id": conversation,
        "status": "finished",
        "answer": "42",
        "tokens": 9,
    }
    messages = await history_of_at_least(client, conversation, 2)
    assert [(m["role"], m["message"]) for m in messages] == [
        ("user", "What is 6 x 7?"),
        ("assistant", "42"),
    ]
    rows = await outbox_rows(database, conversation)
    assert [(row["biz_type"], row["topic"], row["status"]) for row in rows] == [
        ("chat_history_persist", settings.core.topic, "consumed"),
        ("chat_history_persist", settings.core.topic, "consumed"),
        ("agent_run.finished", f"{settings.core.topic}.agent-runs", "consumed"),
    ]
    assert rows[-1]["event_id"] == finished["event_id"]


async def test_an_event_its_type_refuses_is_a_422_and_records_nothing(
    client: httpx.AsyncClient, database: AsyncEngine
) -> None:
    conversation = new_conversation()
    run_id = (await post_message(client, conversation, "hi")).json()["run_id"]

    response = await client.post(f"/runs/{run_id}/finish", json={"answer": "x", "tokens": -1})

    assert response.status_code == 422
    assert "tokens must be a non-negative integer" in response.json()["detail"]
    assert [row["biz_type"] for row in await outbox_rows(database, conversation)] == [
        "chat_history_persist"
    ]
