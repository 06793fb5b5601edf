"""A FastAPI app with its own table that records each user message through chat-outbox.

`POST /conversations/{id}/messages` writes an `agent_runs` row and records the chat message
with `Outbox.record` in ONE transaction of the app's own session: both commit, or neither
does. The relay and the consumer run inside the app (its lifespan starts and stops them)
and carry the message into chat history, which `GET /conversations/{id}/history` serves.

`POST /runs/{id}/finish` records a second event type beside the agent's answer (a chat
message): `agent_run.finished`, whose handler, run by the consumer in its own transaction,
marks the `agent_runs` row finished. `GET /runs/{id}` shows it.

Nothing is built at import time: `create_app(settings)` builds an app, and uvicorn runs
`app_from_env` with `--factory` (see README.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import FastAPI, Header, HTTPException, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy import event, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from chat_outbox import (
    ChatMessage,
    Event,
    EventRegistry,
    EventType,
    IdempotencyConflict,
    InvalidChatMessage,
    InvalidEvent,
    Outbox,
    PermanentHandlerError,
    Role,
    Settings,
)
from examples.fastapi_app.models import AgentRun, Base

ConversationId = Annotated[str, Path(min_length=1, max_length=128)]


class NewMessage(BaseModel):
    """The request body; chat-outbox's `ChatMessage.create` checks the values."""

    model_config = ConfigDict(extra="forbid", strict=True)
    user_id: int
    message: str


class RunRecorded(BaseModel):
    run_id: int
    conversation_id: str
    outbox_id: int
    event_id: str
    replayed: bool


class HistoryMessage(BaseModel):
    event_id: str
    outbox_id: int
    user_id: int
    role: str
    message: str
    recorded_at: datetime


class History(BaseModel):
    conversation_id: str
    messages: list[HistoryMessage]


class RunFinish(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    answer: str
    tokens: int


class FinishRecorded(BaseModel):
    run_id: int
    outbox_id: int
    event_id: str


class Run(BaseModel):
    run_id: int
    conversation_id: str
    status: str
    answer: str | None
    tokens: int | None


RUN_FINISHED = "agent_run.finished"


def check_run_finished(payload: Any) -> None:
    """The agent_run.finished payload: {"run_id": int, "tokens": int}, nothing else."""
    if not isinstance(payload, dict) or set(payload) != {"run_id", "tokens"}:
        raise ValueError("expected exactly run_id and tokens")
    for name in ("run_id", "tokens"):
        value = payload[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer")


def event_types(settings: Settings) -> EventRegistry:
    """The app's event types besides chat messages, and their handlers. Run events travel on
    a topic of their own beside the chat topic; the consumer reads both."""
    events = EventRegistry()
    runs_topic = f"{settings.core.topic}.agent-runs"
    events.register(
        EventType(
            RUN_FINISHED, validate=check_run_finished, topic=runs_topic, max_payload_bytes=256
        )
    )

    @events.handler(RUN_FINISHED)
    async def finish_run(event: Event, session: AsyncSession) -> None:
        """Runs in the consumer's transaction, once per event: the update commits with it."""
        run = await session.get(AgentRun, event.payload["run_id"])
        if run is None:
            raise PermanentHandlerError(f"no agent run {event.payload['run_id']}")
        run.status = "finished"
        run.tokens = event.payload["tokens"]

    return events


class FailedAfterRecord(Exception):
    """The atomicity demo (`?fail_after_record=true`): raised after `Outbox.record` and the
    `agent_runs` insert, before the commit."""

    def __init__(self, event_id: str) -> None:
        super().__init__(f"failed after recording event {event_id}, before the commit")
        self.event_id = event_id


def create_engine(url: str) -> AsyncEngine:
    """The app's engine. On SQLite, the app, the relay and the consumer all write one file:
    SQLAlchemy's recipe for aiosqlite lets SQLAlchemy begin each transaction, and BEGIN
    IMMEDIATE takes the write lock up front so writers queue instead of failing."""
    if make_url(url).get_backend_name() != "sqlite":
        return create_async_engine(url)
    engine = create_async_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine.sync_engine, "connect")
    def _no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine.sync_engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def create_app(settings: Settings, database_url: str | None = None) -> FastAPI:
    """The app, configured by chat-outbox's `settings` (a Kafka or RabbitMQ bus: the jobs
    refuse the in-memory one). `database_url` is the app's own engine URL, by default
    `settings.core.database_url`; it must name the same database, since the outbox rows are
    written through the app's connection and the relay reads them from that database."""
    outbox = Outbox(settings, events=event_types(settings))
    engine = create_engine(database_url or settings.core.database_url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await outbox.migrate()  # chat-outbox's tables, under its own Alembic version table
        try:
            async with engine.begin() as connection:
                # The app's own table (a real app would migrate it with its own Alembic).
                await connection.run_sync(Base.metadata.create_all)
            # Each job returns from start() once its database and bus connections are up,
            # and stops gracefully (batch in flight finished) on the way out.
            async with outbox.relay(), outbox.consumer():
                yield
        finally:
            await engine.dispose()

    app = FastAPI(title="chat-outbox FastAPI example", lifespan=lifespan)

    @app.post("/conversations/{conversation_id}/messages", status_code=status.HTTP_201_CREATED)
    async def post_message(
        conversation_id: ConversationId,
        body: NewMessage,
        response: Response,
        idempotency_key: Annotated[str | None, Header()] = None,
        fail_after_record: Annotated[
            bool,
            Query(
                description="atomicity demo: fail after recording, before the commit; the "
                "transaction rolls back, leaving neither the run nor the outbox row"
            ),
        ] = False,
    ) -> RunRecorded:
        """Start an agent run for the user's prompt and record the prompt as a chat
        message, in one transaction. With an `Idempotency-Key`, a retry answers 200 with
        the first run; the key reused for another message is a 409."""
        chat = ChatMessage.create(
            user_id=body.user_id,
            conversation_id=conversation_id,
            role=Role.USER,
            message=body.message,
            max_message_bytes=settings.core.max_message_bytes,
        )
        async with sessions() as session:
            # Recorded first only to learn whether an idempotency key replays an earlier
            # request; inside the transaction the order of the two writes does not matter.
            recorded = await outbox.record(session, chat, idempotency_key=idempotency_key)
            run = None
            if recorded.replayed:
                query = select(AgentRun).where(AgentRun.event_id == recorded.event_id)
                run = await session.scalar(query)
            if run is None:
                run = AgentRun(
                    conversation_id=conversation_id,
                    user_id=body.user_id,
                    prompt=body.message,
                    event_id=recorded.event_id,
                )
                session.add(run)
                await session.flush()  # assigns run.id
            if fail_after_record:
                raise FailedAfterRecord(recorded.event_id)  # leaving the block rolls back
            await session.commit()  # the app commits: Outbox.record never does
        if recorded.replayed:
            response.status_code = status.HTTP_200_OK
        return RunRecorded(
            run_id=run.id,
            conversation_id=conversation_id,
            outbox_id=recorded.outbox_id,
            event_id=recorded.event_id,
            replayed=recorded.replayed,
        )

    @app.get("/conversations/{conversation_id}/history")
    async def get_history(
        conversation_id: ConversationId,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> History:
        """The conversation's messages the consumer has persisted, in recording order."""
        async with sessions() as session:
            entries = await outbox.history(session, conversation_id, limit=limit)
        return History(
            conversation_id=conversation_id,
            messages=[
                HistoryMessage(
                    event_id=entry.event_id,
                    outbox_id=entry.outbox_id,
                    user_id=entry.user_id,
                    role=entry.role.value,
                    message=entry.message,
                    recorded_at=entry.recorded_at,
                )
                for entry in entries
            ],
        )

    @app.post("/runs/{run_id}/finish", status_code=status.HTTP_202_ACCEPTED)
    async def finish_run(run_id: int, body: RunFinish) -> FinishRecorded:
        """Record the agent's answer as a chat message and the run's agent_run.finished
        event, in one transaction; the consumer persists the one and handles the other, in
        that order, as both are keyed by the run's conversation."""
        async with sessions() as session:
            run = await session.get(AgentRun, run_id)
            if run is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"no agent run {run_id}")
            answer = ChatMessage.create(
                user_id=run.user_id,
                conversation_id=run.conversation_id,
                role=Role.ASSISTANT,
                message=body.answer,
                max_message_bytes=settings.core.max_message_bytes,
            )
            await outbox.record(session, answer)
            finished = Event(
                RUN_FINISHED, run.conversation_id, {"run_id": run_id, "tokens": body.tokens}
            )
            recorded = await outbox.record(session, finished)
            run.answer = body.answer
            await session.commit()
        return FinishRecorded(
            run_id=run_id, outbox_id=recorded.outbox_id, event_id=recorded.event_id
        )

    @app.get("/runs/{run_id}")
    async def get_run(run_id: int) -> Run:
        async with sessions() as session:
            run = await session.get(AgentRun, run_id)
        if run is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no agent run {run_id}")
        return Run(
            run_id=run.id,
            conversation_id=run.conversation_id,
            status=run.status,
            answer=run.answer,
            tokens=run.tokens,
        )

    @app.exception_handler(InvalidEvent)
    async def invalid_event(request: Request, error: InvalidEvent) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, 422)

    @app.exception_handler(InvalidChatMessage)
    async def invalid_message(request: Request, error: InvalidChatMessage) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, 422)  # the name differs across Starlettes

    @app.exception_handler(IdempotencyConflict)
    async def idempotency_conflict(request: Request, error: IdempotencyConflict) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status.HTTP_409_CONFLICT)

    @app.exception_handler(FailedAfterRecord)
    async def failed_after_record(request: Request, error: FailedAfterRecord) -> JSONResponse:
        return JSONResponse(
            {"detail": f"{error}: the transaction rolled back", "event_id": error.event_id},
            status.HTTP_500_INTERNAL_SERVER_ERROR,
        )

    return app


def app_from_env() -> FastAPI:
    """uvicorn's `--factory` entry: chat-outbox's settings from the CHAT_OUTBOX_* environment."""
    return create_app(Settings.from_env())


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app_from_env, factory=True, host="127.0.0.1", port=8000)
