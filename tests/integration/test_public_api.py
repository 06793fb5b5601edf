"""The public API as a host app uses it: record in the host's own transaction, run jobs."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry import context, trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from chat_outbox import (
    ChatMessage,
    IdempotencyConflict,
    InvalidChatMessage,
    Outbox,
    Role,
    Settings,
)
from chat_outbox.adapters.sql.migrate import SchemaNotMigrated
from tests.integration.kafka_helpers import (
    count_by_status,
    eventually,
    fast_kafka_settings,
    history_event_ids,
    outbox_rows,
)

pytestmark = pytest.mark.integration

host_metadata = MetaData()
agent_runs = Table(
    "host_agent_runs",
    host_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("prompt", String(200), nullable=False),
)
HELLO = ChatMessage(7, "conv-api", Role.USER, "hello from the host")


def url_of(engine: AsyncEngine) -> str:
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture
async def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """The host's own session factory, over a database with the host's table beside ours."""
    async with engine.begin() as connection:
        await connection.run_sync(host_metadata.create_all)
        await connection.execute(agent_runs.delete())
    return async_sessionmaker(engine, expire_on_commit=False)


@pytest.fixture
def outbox(engine: AsyncEngine) -> Outbox:
    return Outbox(Settings.of(database_url=url_of(engine)))


async def host_rows(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(agent_runs)) or 0)


async def test_a_committed_host_transaction_keeps_its_row_and_the_outbox_row(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], outbox: Outbox
) -> None:
    """The host's write and the pending outbox row commit together."""
    async with sessions() as session, session.begin():
        await session.execute(insert(agent_runs).values(prompt="run"))
        recorded = await outbox.record(session, HELLO)
    rows = await outbox_rows(engine)
    assert await host_rows(engine) == 1
    assert [(r["id"], r["event_id"], r["status"]) for r in rows] == [
        (recorded.outbox_id, recorded.event_id, "pending")
    ]
    assert rows[0]["message_key"] == "conv-api"


async def test_a_rolled_back_host_transaction_leaves_neither_row(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], outbox: Outbox
) -> None:
    """A failure after recording rolls the outbox row back with the host's own write."""

    async def request() -> None:
        async with sessions() as session, session.begin():
            await session.execute(insert(agent_runs).values(prompt="run"))
            await outbox.record(session, HELLO)
            raise RuntimeError("the host failed after recording")

    with pytest.raises(RuntimeError, match="after recording"):
        await request()
    assert await host_rows(engine) == 0
    assert await outbox_rows(engine) == []


async def test_record_leaves_the_transaction_open_and_uncommitted(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], outbox: Outbox
) -> None:
    """Recording neither commits nor ends the host's transaction: others see nothing yet."""
    # A plain engine reads beside the open write (ours begins SQLite writes IMMEDIATE).
    elsewhere = create_async_engine(url_of(engine))
    try:
        async with sessions() as session:
            await outbox.record(session, HELLO)
            assert session.in_transaction()
            assert await outbox_rows(elsewhere) == []
            await session.rollback()
    finally:
        await elsewhere.dispose()
    assert await outbox_rows(engine) == []


async def test_record_joins_a_connection_transaction(engine: AsyncEngine, outbox: Outbox) -> None:
    """An AsyncConnection works as the session does: the row commits with the caller."""
    async with engine.connect() as connection:
        await connection.begin()
        recorded = await outbox.record(connection, HELLO)
        assert connection.in_transaction()
        await connection.commit()
    assert [row["id"] for row in await outbox_rows(engine)] == [recorded.outbox_id]


async def test_the_same_idempotency_key_and_message_record_once(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], outbox: Outbox
) -> None:
    """A retried request with its key returns the first recording instead of a second row."""
    answers = []
    for _ in range(2):
        async with sessions() as session, session.begin():
            answers.append(await outbox.record(session, HELLO, idempotency_key="req-1"))
    first, again = answers
    assert (again.outbox_id, again.event_id) == (first.outbox_id, first.event_id)
    assert (first.replayed, again.replayed) == (False, True)
    assert len(await outbox_rows(engine)) == 1


async def test_a_key_reused_for_another_message_is_refused_and_the_host_may_go_on(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], outbox: Outbox
) -> None:
    """The conflict is an error, and the host's transaction is still usable after it (a
    failed INSERT would abort it on PostgreSQL)."""
    async with sessions() as session, session.begin():
        await outbox.record(session, HELLO, idempotency_key="req-2")
    other = ChatMessage(7, "conv-api", Role.USER, "another text")
    async with sessions() as session, session.begin():
        with pytest.raises(IdempotencyConflict):
            await outbox.record(session, other, idempotency_key="req-2")
        await session.execute(insert(agent_runs).values(prompt="still fine"))
    assert await host_rows(engine) == 1
    assert [row["payload"] for row in await outbox_rows(engine)] == [
        '{"user_id":7,"conversation_id":"conv-api","role":"user","message":"hello from the host"}'
    ]


@pytest.mark.parametrize(
    ("message", "key"),
    [
        (ChatMessage(7, "", Role.USER, "no conversation"), None),
        (ChatMessage(0, "conv-api", Role.USER, "no user"), None),
        (HELLO, "has space"),
    ],
)
async def test_an_invalid_message_or_key_is_refused_before_any_write(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    outbox: Outbox,
    message: ChatMessage,
    key: str | None,
) -> None:
    """chat-outbox checks what the host hands it, as the HTTP API does."""
    async with sessions() as session, session.begin():
        with pytest.raises(InvalidChatMessage):
            await outbox.record(session, message, idempotency_key=key)
    assert await outbox_rows(engine) == []


async def test_the_active_opentelemetry_context_travels_with_the_message(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], outbox: Outbox
) -> None:
    """A span active in the host when it records becomes the row's traceparent."""
    span = SpanContext(
        trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
        span_id=0x00F067AA0BA902B7,
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    token = context.attach(trace.set_span_in_context(NonRecordingSpan(span)))
    try:
        async with sessions() as session, session.begin():
            await outbox.record(session, HELLO)
    finally:
        context.detach(token)
    (row,) = await outbox_rows(engine)
    assert row["traceparent"] == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def kafka_settings(database_url: str, bootstrap: str) -> Settings:
    return fast_kafka_settings(database_url, bootstrap, "api", relay_claim="lease")


@pytest.mark.parametrize("migrated_engine", ["sqlite"], indirect=True)
async def test_relay_and_consumer_jobs_carry_a_recorded_message_into_history(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], kafka_bootstrap: str
) -> None:
    """Started as a host's lifespan would, the jobs publish and persist what it records,
    and stop gracefully with their reports."""
    outbox = Outbox(kafka_settings(url_of(engine), kafka_bootstrap))
    relay, consumer = outbox.relay(), outbox.consumer()
    async with relay, consumer:
        assert relay.running
        assert consumer.running
        async with sessions() as session, session.begin():
            recorded = await outbox.record(session, HELLO)
        await eventually(lambda: _in_history(engine, recorded.event_id), "in history", 30.0)
    assert not relay.running
    assert not consumer.running
    assert (await relay.stop()).published == 1
    assert (await consumer.stop()).persisted == 1
    assert await count_by_status(engine) == {"consumed": 1}
    async with sessions() as session:
        history = await outbox.history(session, HELLO.conversation_id)
    assert [(e.event_id, e.message) for e in history] == [(recorded.event_id, HELLO.message)]


async def _in_history(engine: AsyncEngine, event_id: str) -> bool:
    return event_id in await history_event_ids(engine)


async def test_a_job_that_cannot_start_raises_from_start(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    """On an unmigrated database, `start()` raises the reason instead of a silent task."""
    url = f"sqlite+aiosqlite:///{tmp_path}/empty.sqlite3"
    job = Outbox(kafka_settings(url, kafka_bootstrap)).relay()
    with pytest.raises(SchemaNotMigrated, match="chat-outbox migrate"):
        await job.start()
    assert not job.running
