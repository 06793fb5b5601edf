"""Host handlers for event types besides chat, on SQLite, PostgreSQL and MariaDB: each runs
in the consumer's transaction, once per event id, and a failing one is retried, or
dead-lettered with its row dead and its key's later events held behind it."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import attrs
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from chat_outbox import Event, EventRegistry, EventType, PermanentHandlerError
from chat_outbox.adapters.clock import SystemClock, uuid4_event_id
from chat_outbox.adapters.memory import InMemoryBus
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.adapters.sql.handling import SqlEventHandlers
from chat_outbox.adapters.sql.tables import chat_history, event_inbox, outbox_messages
from chat_outbox.application.consume.consuming import Consumer, ConsumeReport
from chat_outbox.application.record.recording import RecordChatMessage, event_row
from chat_outbox.domain import ChatMessage, Envelope, OutboxMessage
from chat_outbox.domain.envelope import EventEnvelope
from chat_outbox.entrypoints.containers import history_writer

pytestmark = pytest.mark.integration

clock = SystemClock()


def with_answer(payload: Any) -> None:
    if not isinstance(payload, dict) or not isinstance(payload.get("answer"), str):
        raise ValueError("answer must be a string")


FINISHED = EventType("agent_run.finished", validate=with_answer)
host = MetaData()
host_runs = Table(
    "host_finished_runs",
    host,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_key", String(128), nullable=False),
    Column("answer", String(200), nullable=False),
)


@attrs.define
class Calls:
    """What the test handler saw and how it behaves."""

    seen: list[str] = attrs.field(factory=list)
    history_counts: list[int] = attrs.field(factory=list)
    raise_first: list[BaseException] = attrs.field(factory=list)
    """Raised, one per call, after the handler's write, until the list is empty."""


@pytest.fixture
async def tables(engine: AsyncEngine) -> None:
    """The host's own table beside chat-outbox's, empty."""
    async with engine.begin() as connection:
        await connection.run_sync(host.create_all)
        await connection.execute(host_runs.delete())


def registry_with(calls: Calls) -> EventRegistry:
    events = EventRegistry()
    events.register(FINISHED)
    events.register(EventType("agent_run.unhandled"))

    @events.handler(FINISHED.name)
    async def finish(event: Event, session: AsyncSession) -> None:
        calls.seen.append(event.payload["answer"])
        count = select(func.count()).select_from(chat_history)
        calls.history_counts.append(
            int(
                (
                    await session.execute(count.where(chat_history.c.conversation_id == event.key))
                ).scalar_one()
            )
        )
        await session.execute(
            insert(host_runs).values(run_key=event.key, answer=event.payload["answer"])
        )
        if calls.raise_first:
            raise calls.raise_first.pop(0)

    return events


async def no_sleep(_: float) -> None:
    return None


def consumer(
    engine: AsyncEngine,
    uow: SqlUnitOfWorkFactory,
    bus: InMemoryBus,
    calls: Calls,
    attempts: int = 5,
) -> Consumer:
    events = registry_with(calls)
    return Consumer(
        bus,
        history_writer(engine, uow),
        clock,
        sleep=no_sleep,
        handlers=SqlEventHandlers(uow, events.handlers, events.types),
        handler_attempts=attempts,
    )


async def recorded_event(
    uow: SqlUnitOfWorkFactory, key: str, answer: str, kind: EventType = FINISHED
) -> OutboxMessage:
    row = event_row(
        kind,
        Event(kind.name, key, {"answer": answer}),
        event_id=uuid4_event_id(),
        topic="chat",
        created_at=clock.now(),
    )
    async with uow() as unit:
        added = await unit.outbox.add(row)
        await unit.commit()
    return added


async def recorded_chat(uow: SqlUnitOfWorkFactory, key: str, text: str) -> OutboxMessage:
    chat = ChatMessage.create(user_id=7, conversation_id=key, role="user", message=text)
    return await RecordChatMessage(uow, clock, uuid4_event_id, "chat")(chat)


def relayed(row: OutboxMessage, **changes: Any) -> bytes:
    """The record the relay sends for `row` (an event or a chat message), fields changed."""
    if row.biz_type == "chat_history_persist":
        value = Envelope.for_outbox_message(row).encode()
    else:
        value = EventEnvelope.for_outbox_message(row).encode()
    document = json.loads(value)
    document.update(changes)
    return json.dumps(document).encode()


async def deliver(target: Consumer, bus: InMemoryBus, *records: bytes) -> ConsumeReport:
    for value in records:
        bus.produce_raw(value, json.loads(value)["key"].encode())
    return await target.consume_batch(0.0)


async def rows(engine: AsyncEngine) -> dict[int, tuple[str, str | None]]:
    """Outbox id -> (status, last_error)."""
    t = outbox_messages
    async with engine.connect() as connection:
        result = await connection.execute(select(t.c.id, t.c.status, t.c.last_error))
        return {outbox_id: (status, error) for outbox_id, status, error in result}


async def host_answers(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        result = await connection.execute(select(host_runs.c.answer).order_by(host_runs.c.id))
        return list(result.scalars())


async def inbox(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        return list((await connection.execute(select(event_inbox.c.event_id))).scalars())


def reasons(bus: InMemoryBus) -> list[str]:
    return [reason for _, reason in bus.dead_letters]


async def test_a_handlers_write_commits_with_the_events_consumed_mark(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory, tables: None
) -> None:
    calls, bus = Calls(), InMemoryBus()
    row = await recorded_event(uow, "run-1", "42")

    report = await deliver(consumer(engine, uow, bus, calls), bus, relayed(row))

    assert (report.received, report.persisted, report.dead_lettered) == (1, 1, 0)
    assert await host_answers(engine) == ["42"]
    assert await rows(engine) == {row.id: ("consumed", None)}
    assert await inbox(engine) == [row.event_id]
    assert bus.acknowledged


async def test_a_redelivered_event_is_handled_once(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory, tables: None
) -> None:
    calls, bus = Calls(), InMemoryBus()
    row = await recorded_event(uow, "run-1", "42")
    target = consumer(engine, uow, bus, calls)

    await deliver(target, bus, relayed(row))
    again = await deliver(target, bus, relayed(row), relayed(row))

    assert calls.seen == ["42"]
    assert (again.persisted, again.duplicates, again.dead_lettered) == (0, 2, 0)
    assert await host_answers(engine) == ["42"]


async def test_a_handler_that_raises_is_retried_and_its_failed_try_leaves_nothing(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory, tables: None
) -> None:
    """The first try wrote a host row, then raised: rolled back; the second commits."""
    calls, bus = Calls(raise_first=[RuntimeError("flaky")]), InMemoryBus()
    row = await recorded_event(uow, "run-1", "42")

    report = await deliver(consumer(engine, uow, bus, calls), bus, relayed(row))

    assert calls.seen == ["42", "42"]
    assert report.persisted == 1
    assert await host_answers(engine) == ["42"]
    assert await rows(engine) == {row.id: ("consumed", None)}


async def test_a_permanent_error_dead_letters_the_event_at_once_and_its_row_goes_dead(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory, tables: None
) -> None:
    calls, bus = Calls(raise_first=[PermanentHandlerError("run 1 is unknown")]), InMemoryBus()
    row = await recorded_event(uow, "run-1", "42")

    report = await deliver(consumer(engine, uow, bus, calls), bus, relayed(row))

    reason = "handler_failed after 1 attempt(s): run 1 is unknown"
    assert calls.seen == ["42"]
    assert (report.persisted, report.dead_lettered) == (0, 1)
    assert reasons(bus) == [reason]
    assert await rows(engine) == {row.id: ("dead", reason)}
    assert await host_answers(engine) == []
    assert await inbox(engine) == []


async def test_a_handler_failing_past_its_attempts_is_dead_lettered(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory, tables: None
) -> None:
    failures: list[BaseException] = [ValueError(f"try {n}") for n in range(1, 10)]
    calls, bus = Calls(raise_first=failures), InMemoryBus()
    row = await recorded_event(uow, "run-1", "42")

    await deliver(consumer(engine, uow, bus, calls, attempts=3), bus, relayed(row))

    assert len(calls.seen) == 3
    assert reasons(bus) == ["handler_failed after 3 attempt(s): ValueError: try 3"]
    assert (await rows(engine))[row.id][0] == "dead"


async def test_a_later_event_of_a_dead_events_key_waits_behind_it_pending(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory, tables: None
) -> None:
    """As the relay holds a key behind a dead row: the later event is not handled, its row
    goes back to pending; another key's event is handled."""
    calls, bus = Calls(raise_first=[PermanentHandlerError("no")]), InMemoryBus()
    first = await recorded_event(uow, "run-1", "first")
    later = await recorded_event(uow, "run-1", "later")
    other = await recorded_event(uow, "run-2", "other")
    async with engine.begin() as connection:  # as the relay leaves them
        await connection.execute(outbox_messages.update().values(status="published"))

    await deliver(
        consumer(engine, uow, bus, calls), bus, relayed(first), relayed(later), relayed(other)
    )

    assert calls.seen == ["first", "other"]
    statuses = {outbox_id: status for outbox_id, (status, _) in (await rows(engine)).items()}
    assert statuses == {first.id: "dead", later.id: "pending", other.id: "consumed"}


async def test_a_type_without_a_handler_is_dead_lettered_as_unknown_type_and_the_rest_goes_on(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory, tables: None
) -> None:
    calls, bus = Calls(), InMemoryBus()
    unhandled = await recorded_event(uow, "k", "x", EventType("agent_run.unhandled"))
    chat = await recorded_chat(uow, "conversation-1", "hello")

    report = await deliver(
        consumer(engine, uow, bus, calls), bus, relayed(unhandled), relayed(chat)
    )

    reason = "unknown_type: no handler for event type 'agent_run.unhandled' here"
    assert reasons(bus) == [reason]
    assert report.persisted == 1
    assert await rows(engine) == {unhandled.id: ("dead", reason), chat.id: ("consumed", None)}


async def test_a_forged_event_record_runs_no_handler_and_changes_no_row(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory, tables: None
) -> None:
    """A record naming another key's row, of a handled type and of an unknown one."""
    calls, bus = Calls(), InMemoryBus()
    row = await recorded_event(uow, "run-1", "42")
    target = consumer(engine, uow, bus, calls)

    await deliver(target, bus, relayed(row, key="run-2"))
    await deliver(target, bus, relayed(row, type="order.created"))

    assert calls.seen == []
    assert reasons(bus)[0] == f"forged_or_stale: outbox row {row.id} has another message_key"
    assert reasons(bus)[1].startswith("unknown_type:")
    assert await rows(engine) == {row.id: ("pending", None)}


async def test_events_and_chat_messages_of_one_key_take_effect_in_bus_order(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory, tables: None
) -> None:
    """In one batch, chat m1, event e, chat m2 of one key: the handler sees m1 persisted
    and not m2."""
    calls, bus = Calls(), InMemoryBus()
    m1 = await recorded_chat(uow, "c-1", "one")
    event = await recorded_event(uow, "c-1", "between")
    m2 = await recorded_chat(uow, "c-1", "two")

    report = await deliver(
        consumer(engine, uow, bus, calls), bus, relayed(m1), relayed(event), relayed(m2)
    )

    assert report.persisted == 3
    assert calls.history_counts == [1]
    assert set((await rows(engine)).values()) == {("consumed", None)}


async def test_a_payload_its_type_refuses_on_arrival_is_dead_lettered_unhandled(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory, tables: None
) -> None:
    """Checked again when handled: a record on the bus may come from anywhere."""
    calls, bus = Calls(), InMemoryBus()
    row = await recorded_event(uow, "run-1", "42")

    await deliver(consumer(engine, uow, bus, calls), bus, relayed(row, payload={"answer": 42}))

    assert calls.seen == []
    [reason] = reasons(bus)
    assert reason.startswith("handler_failed after 1 attempt(s): invalid_payload:")
    assert "answer must be a string" in reason
    assert (await rows(engine))[row.id] == ("dead", reason)


async def test_purging_a_handled_events_row_takes_its_inbox_line_and_a_late_copy_is_refused(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory, tables: None
) -> None:
    calls, bus = Calls(), InMemoryBus()
    row = await recorded_event(uow, "run-1", "42")
    target = consumer(engine, uow, bus, calls)
    await deliver(target, bus, relayed(row))

    async with uow() as unit:
        assert await unit.outbox.purge_consumed(clock.now() + timedelta(seconds=1), 10) == 1
        await unit.commit()
    await deliver(target, bus, relayed(row))

    assert await inbox(engine) == []
    assert calls.seen == ["42"]
    assert reasons(bus) == [f"forged_or_stale: no outbox row {row.id}"]
