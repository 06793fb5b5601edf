"""chat-outbox inside a host application: record in the host's own transaction, and run
the relay and the consumer as jobs the host starts and stops (a FastAPI lifespan, say)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

import attrs
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from chat_outbox.adapters.clock import SystemClock, uuid4_event_id
from chat_outbox.adapters.sql import create_engine, upgrade
from chat_outbox.adapters.sql.handling import Handler
from chat_outbox.adapters.sql.history import SqlChatHistoryRepository
from chat_outbox.adapters.sql.outbox import SqlOutboxRepository
from chat_outbox.adapters.tracing import available_tracing
from chat_outbox.application.consume.consuming import ConsumeReport
from chat_outbox.application.record.recording import (
    add_once,
    chat_row,
    event_row,
    idempotent_event_id,
)
from chat_outbox.application.relay.relaying import RelayReport
from chat_outbox.domain import ChatMessage, Event, EventType, HistoryEntry
from chat_outbox.entrypoints.config import Settings
from chat_outbox.entrypoints.events import EventRegistry

if TYPE_CHECKING:
    from chat_outbox.entrypoints.processes import Started

R = TypeVar("R")
log = structlog.get_logger(__name__)


@attrs.frozen
class Recorded:
    """What `Outbox.record` added: the outbox row's id and the message's event id."""

    outbox_id: int
    event_id: str
    replayed: bool = False
    """True when an idempotency key matched an earlier recording, which is returned."""


class Outbox:
    """chat-outbox for a host application, configured by `settings` (default: the
    CHAT_OUTBOX_* environment) and `events`, its event types and handlers besides chat
    messages (default: an empty registry). Building it opens nothing; `record` uses the
    host's connection, and each job opens and closes its own while it runs."""

    def __init__(
        self, settings: Settings | None = None, *, events: EventRegistry | None = None
    ) -> None:
        self.settings = Settings.from_env() if settings is None else settings
        self.events = EventRegistry() if events is None else events
        self._clock = SystemClock()
        self._tracing = available_tracing()

    def register(self, event_type: EventType) -> EventType:
        """Register an event type in this outbox's registry (see EventRegistry.register)."""
        return self.events.register(event_type)

    def handler(self, name: str) -> Callable[[Handler], Handler]:
        """Decorate the handler of a registered type (see EventRegistry.handler)."""
        return self.events.handler(name)

    async def record(
        self,
        session: AsyncSession | AsyncConnection,
        message: ChatMessage | Event,
        *,
        idempotency_key: str | None = None,
    ) -> Recorded:
        """Add `message` (a chat message, or an event of a registered type) as a pending
        outbox row in the transaction of the host's `session` (or connection), beside the
        host's own writes: it commits or rolls back with them, and this never commits,
        rolls back or closes it. The active OpenTelemetry context, if any, travels with it.
        With `idempotency_key`, the same key and message under one conversation (or one
        event type and key) record once (the first recording is returned); the same key
        with another message raises IdempotencyConflict. Raises InvalidChatMessage or
        InvalidEvent for what chat-outbox would refuse, UnknownEventType for an event of
        a type not registered."""
        if isinstance(message, Event):
            return await self._record_event(session, message, idempotency_key)
        chat = ChatMessage.create(
            user_id=message.user_id,
            conversation_id=message.conversation_id,
            role=message.role,
            message=message.message,
            max_message_bytes=self.settings.core.max_message_bytes,
        )
        keyed = idempotency_key is not None
        row = chat_row(
            chat,
            event_id=(
                idempotent_event_id(chat.conversation_id, idempotency_key)
                if idempotency_key is not None
                else uuid4_event_id()
            ),
            topic=self.settings.core.topic,
            created_at=self._clock.now(),
            max_retry=self.settings.core.max_retry,
            traceparent=self._tracing.current(),
        )
        outbox = SqlOutboxRepository(await _connection(session))
        added, replayed = await add_once(outbox, row) if keyed else (await outbox.add(row), False)
        return Recorded(added.id, added.event_id, replayed)

    async def _record_event(
        self,
        session: AsyncSession | AsyncConnection,
        event: Event,
        idempotency_key: str | None,
    ) -> Recorded:
        kind = self.events.type_of(event.type)
        scope = f"{kind.name}\x00{event.key}"
        row = event_row(
            kind,
            event,
            event_id=(
                idempotent_event_id(scope, idempotency_key)
                if idempotency_key is not None
                else uuid4_event_id()
            ),
            topic=self.settings.core.topic,
            created_at=self._clock.now(),
            max_retry=self.settings.core.max_retry,
            traceparent=self._tracing.current(),
        )
        outbox = SqlOutboxRepository(await _connection(session))
        if idempotency_key is None:
            added, replayed = await outbox.add(row), False
        else:
            added, replayed = await add_once(outbox, row)
        return Recorded(added.id, added.event_id, replayed)

    async def history(
        self, session: AsyncSession | AsyncConnection, conversation_id: str, *, limit: int = 1000
    ) -> list[HistoryEntry]:
        """A conversation's persisted chat history, in recording order, read through the
        host's session (or connection)."""
        connection = await _connection(session)
        return await SqlChatHistoryRepository(connection).for_conversation(conversation_id, limit)

    async def migrate(self) -> None:
        """Bring chat-outbox's tables in the configured database up to date (its own
        Alembic version table; the host's is never touched)."""
        engine = create_engine(self.settings.core.database_url)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    def relay(self, *, once: bool = False) -> Job[RelayReport]:
        """The relay as a job: publishes due rows until stopped (`once`: until none is due)."""
        from chat_outbox.entrypoints.processes import (
            run_relay,
        )  # a host importing chat_outbox loads no container

        return Job(
            "relay",
            lambda started: run_relay(self.settings, started, once=once, events=self.events),
        )

    def consumer(self, *, idle_exit: float | None = None) -> Job[ConsumeReport]:
        """The consumer as a job: persists bus records into chat history, and hands other
        events to their handlers, until stopped."""
        from chat_outbox.entrypoints.processes import (
            run_consume,
        )  # a host importing chat_outbox loads no container

        return Job(
            "consumer",
            lambda started: run_consume(
                self.settings, started, idle_exit=idle_exit, events=self.events
            ),
        )


async def _connection(session: AsyncSession | AsyncConnection) -> AsyncConnection:
    """The connection of the session's transaction (begun if need be), or the connection."""
    return await session.connection() if isinstance(session, AsyncSession) else session


class Job(Generic[R]):
    """A relay or consumer running as a task of the host's event loop. `start()` returns
    once its database and bus connections are up (or raises why they are not); `stop()`
    stops it as SIGTERM stops the CLI process (finish the batch in flight, commit, close)
    and returns its report, or raises what made it fail. Also an async context manager."""

    def __init__(self, name: str, run: Callable[[Started], Coroutine[Any, Any, R]]) -> None:
        self.name = name
        self._run = run
        self._task: asyncio.Task[R] | None = None
        self._stop: Callable[[], None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError(f"the {self.name} was started already")
        up: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def started(stop: Callable[[], None]) -> None:
            self._stop = stop
            up.set_result(None)

        self._task = asyncio.create_task(self._run(started), name=f"chat-outbox {self.name}")
        self._task.add_done_callback(self._log_failure)
        waiting: set[asyncio.Future[Any]] = {up, self._task}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if not up.done():
            up.cancel()
            await self._task  # raises why it could not start

    async def stop(self) -> R:
        if self._task is None:
            raise RuntimeError(f"the {self.name} was never started")
        if self._stop is not None:
            self._stop()
        return await self._task

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def _log_failure(self, task: asyncio.Task[R]) -> None:
        # A job that fails while the host runs must not wait for `stop()` to be heard of.
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            log.error("job_failed", job=self.name, error=f"{type(error).__name__}: {error}")
