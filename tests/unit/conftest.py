"""Shared unit-test helpers: the expected state table, a wired harness of fakes, small fakes."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Literal, Self

import attrs
import pytest

from chat_outbox.adapters.clock import ManualClock
from chat_outbox.adapters.memory import InMemoryBus, InMemoryStore, InMemoryUnitOfWork
from chat_outbox.adapters.memory.claims import InMemoryLeasedClaims, InMemoryLockedClaims
from chat_outbox.application.consume.consuming import Consumer
from chat_outbox.application.consume.persisting import UnitOfWorkHistoryWriter
from chat_outbox.application.errors import StoreUnavailable
from chat_outbox.application.ports import (
    ChatHistoryRepository,
    ConversationOwners,
    IncomingRecord,
    MessageBus,
    OutboxClaims,
    OutboxRepository,
    OutgoingRecord,
    PublishResult,
    RelayRoster,
    UnitOfWork,
)
from chat_outbox.application.record.recording import RecordChatMessage
from chat_outbox.application.relay.relaying import Relay
from chat_outbox.domain import (
    ChatMessage,
    OutboxEvent,
    OutboxMessage,
    OutboxStatus,
    PublishFailure,
    RetryPolicy,
)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
TOPIC = "chat.messages"

NoOp = Literal["no-op"]
Refused = Literal["refused"]
NO_OP: NoOp = "no-op"
REFUSED: Refused = "refused"

_P, _U, _C, _D = (
    OutboxStatus.PENDING,
    OutboxStatus.PUBLISHED,
    OutboxStatus.CONSUMED,
    OutboxStatus.DEAD,
)

Cell = OutboxStatus | NoOp | Refused


def _row(
    acked: Cell,
    failed: Cell,
    fatal: Cell,
    consumed: Cell,
    requeue: Cell,
    sweep: Cell,
    handler_failed: Cell,
) -> dict[OutboxEvent, Cell]:
    return {
        OutboxEvent.PUBLISH_ACKED: acked,
        OutboxEvent.PUBLISH_FAILED: failed,
        OutboxEvent.PUBLISH_FAILED_FATALLY: fatal,
        OutboxEvent.CONSUMED: consumed,
        OutboxEvent.REQUEUED: requeue,
        OutboxEvent.SWEPT: sweep,
        OutboxEvent.HANDLER_FAILED: handler_failed,
    }


# ARCHITECTURE.md's table, written out independently of domain.TABLE so that a wrong
# domain table fails the tests ("-" in the document is REFUSED here).
ARCHITECTURE_TABLE: dict[OutboxStatus, dict[OutboxEvent, Cell]] = {
    _P: _row(_U, _P, _D, _C, REFUSED, REFUSED, _D),
    _U: _row(NO_OP, NO_OP, NO_OP, _C, REFUSED, _P, _D),
    _C: _row(NO_OP, NO_OP, NO_OP, NO_OP, REFUSED, REFUSED, NO_OP),
    _D: _row(NO_OP, NO_OP, NO_OP, _C, _P, REFUSED, NO_OP),
}


def status_changes_allowed_by(
    events: frozenset[OutboxEvent],
) -> frozenset[tuple[OutboxStatus, OutboxStatus]]:
    """Every (from, to) status change with from != to that one of `events` may cause."""
    return frozenset(
        (before, after)
        for before, row in ARCHITECTURE_TABLE.items()
        for event, after in row.items()
        if event in events and isinstance(after, OutboxStatus) and after != before
    )


def make_outbox_message(
    status: OutboxStatus = OutboxStatus.PENDING, **overrides: Any
) -> OutboxMessage:
    """A stored row in any status, with a valid payload."""
    chat = ChatMessage.create(user_id=7, conversation_id="conv-1", role="user", message="hi")
    message = OutboxMessage(
        id=41,
        event_id=str(uuid.UUID(int=41)),
        biz_type="chat_history_persist",
        topic=TOPIC,
        message_key=chat.conversation_id,
        payload='{"user_id":7,"conversation_id":"conv-1","role":"user","message":"hi"}',
        status=status,
        created_at=T0,
        updated_at=T0,
        next_retry_at=T0,
    )
    return attrs.evolve(message, **overrides)


def chat(conversation_id: str = "conv-1", message: str = "hello", user_id: int = 7) -> ChatMessage:
    return ChatMessage.create(
        user_id=user_id, conversation_id=conversation_id, role="user", message=message
    )


@attrs.define
class SequentialEventIds:
    """Deterministic UUID event ids: 00000000-...-0001, -0002, ..."""

    issued: int = 0

    def __call__(self) -> str:
        self.issued += 1
        return str(uuid.UUID(int=self.issued))


def event_id_of(record: OutgoingRecord | IncomingRecord) -> str:
    return dict(record.headers)["event_id"].decode()


def failing(
    failure: PublishFailure, when: Callable[[OutgoingRecord], bool] = lambda _: True
) -> Callable[[OutgoingRecord], PublishFailure | None]:
    """An InMemoryBus.fail_with injector: `failure` for the records `when` selects."""
    return lambda record: failure if when(record) else None


@attrs.define
class RecordingSleep:
    """A sleep that returns at once, recording each delay and what `watch` saw at that time."""

    watch: Callable[[], object] = lambda: None
    delays: list[float] = attrs.field(factory=list)
    seen: list[object] = attrs.field(factory=list)

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        self.seen.append(self.watch())


@attrs.define
class FlakyCommits:
    """A unit-of-work factory whose first `failures` commits raise StoreUnavailable."""

    store: InMemoryStore
    failures: int
    refused: int = 0

    def __call__(self) -> UnitOfWork:
        return FlakyUnitOfWork(InMemoryUnitOfWork(self.store), self)


class FlakyUnitOfWork:
    """Delegates to an InMemoryUnitOfWork, but commit() may fail as a dropped connection."""

    outbox: OutboxRepository
    history: ChatHistoryRepository
    relays: RelayRoster
    owners: ConversationOwners

    def __init__(self, inner: InMemoryUnitOfWork, commits: FlakyCommits) -> None:
        self._inner = inner
        self._commits = commits

    async def __aenter__(self) -> Self:
        await self._inner.__aenter__()
        self.outbox = self._inner.outbox
        self.history = self._inner.history
        self.relays = self._inner.relays
        self.owners = self._inner.owners
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._inner.__aexit__(exc_type, exc, traceback)

    async def commit(self) -> None:
        if self._commits.refused < self._commits.failures:
            self._commits.refused += 1
            raise StoreUnavailable("connection to the database was lost")
        await self._inner.commit()


@attrs.define
class LostAcks:
    """A MessageSource over an InMemoryBus whose acknowledgements never arrive
    (the consumer process died between its commit and its offset commit)."""

    bus: InMemoryBus
    dropped: int = 0

    async def fetch(self, max_records: int, timeout: float) -> list[IncomingRecord]:
        return await self.bus.fetch(max_records, timeout)

    async def acknowledge(self, records: Sequence[IncomingRecord]) -> None:
        self.dropped += len(records)

    async def dead_letter(self, record: IncomingRecord, reason: str) -> None:
        await self.bus.dead_letter(record, reason)


class CrashingBus(MessageBus):
    """A bus whose publish kills the relay process mid-batch."""

    async def publish(self, records: Sequence[OutgoingRecord]) -> list[PublishResult]:
        raise RuntimeError("relay process killed")


@attrs.define
class Harness:
    """The in-memory system: store, bus, manual clock and the use cases wired to them."""

    store: InMemoryStore = attrs.field(factory=InMemoryStore)
    bus: InMemoryBus = attrs.field(factory=InMemoryBus)
    clock: ManualClock = attrs.field(factory=lambda: ManualClock(T0))
    event_ids: SequentialEventIds = attrs.field(factory=SequentialEventIds)
    policy: RetryPolicy = attrs.field(factory=lambda: RetryPolicy(rand=lambda: 1.0))

    def uow(self) -> InMemoryUnitOfWork:
        return InMemoryUnitOfWork(self.store)

    def relay(
        self, batch_size: int = 500, lease: timedelta | None = timedelta(seconds=60)
    ) -> Relay:
        """A relay claiming with `lease`, or with row locks when it is None."""
        return Relay(self.claims(lease), self.bus, self.clock, self.policy, batch_size=batch_size)

    def claims(self, lease: timedelta | None = timedelta(seconds=60)) -> OutboxClaims:
        if lease is None:
            return InMemoryLockedClaims(self.uow)
        return InMemoryLeasedClaims(self.uow, lease)

    def consumer(self, batch_size: int = 500, source: LostAcks | None = None) -> Consumer:
        return Consumer(
            source=source or self.bus,
            writer=UnitOfWorkHistoryWriter(self.uow),
            clock=self.clock,
            policy=self.policy,
            batch_size=batch_size,
            sleep=RecordingSleep(),
        )

    async def record(
        self, conversation_id: str = "conv-1", message: str = "hello", max_retry: int = 20
    ) -> OutboxMessage:
        use_case = RecordChatMessage(
            self.uow, self.clock, self.event_ids, TOPIC, max_retry=max_retry
        )
        return await use_case(chat(conversation_id, message))

    def row(self, outbox_id: int) -> OutboxMessage:
        return self.store.outbox[outbox_id]

    def status(self, outbox_id: int) -> OutboxStatus:
        return self.store.outbox[outbox_id].status

    def published_event_ids(self) -> list[str]:
        return [event_id_of(record) for record in self.bus.log]


@pytest.fixture
def harness() -> Harness:
    return Harness()
