"""`chat-outbox relay` and `consume` with a host's registry (`--handlers`), as real
processes on the real broker: its events are published and handled, in each key's order."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox import Event
from chat_outbox.adapters.clock import SystemClock, uuid4_event_id
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.application.record.recording import event_row
from tests.integration.event_registry import NOTED, host, host_notes
from tests.integration.kafka_helpers import count_by_status, on_sqlite_and_postgresql
from tests.integration.processes import Launcher

pytestmark = [pytest.mark.integration, on_sqlite_and_postgresql]

REGISTRY = "tests.integration.event_registry:events"


async def notes(engine: AsyncEngine) -> list[tuple[str, str]]:
    async with engine.connect() as connection:
        query = select(host_notes.c.note_key, host_notes.c.note).order_by(host_notes.c.id)
        return [(key, note) for key, note in await connection.execute(query)]


async def test_processes_given_a_registry_publish_and_handle_its_events_in_key_order(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory, launcher: Launcher
) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(host.create_all)
        await connection.execute(host_notes.delete())
    clock = SystemClock()
    topic = launcher.env["CHAT_OUTBOX_TOPIC"]
    recorded = [("k-1", "a"), ("k-2", "x"), ("k-1", "b"), ("k-1", "c"), ("k-2", "y")]
    async with uow() as unit:
        for key, text in recorded:
            event = Event(NOTED.name, key, {"note": text})
            await unit.outbox.add(
                event_row(
                    NOTED, event, event_id=uuid4_event_id(), topic=topic, created_at=clock.now()
                )
            )
        await unit.commit()

    relay = await launcher.spawn("relay", "--once", "--handlers", REGISTRY)
    assert await relay.exit_code(within=60) == 0, relay.tail()
    consumer = await launcher.spawn("consume", "--idle-exit", "2", "--handlers", REGISTRY)
    assert await consumer.exit_code(within=60) == 0, consumer.tail()

    assert await count_by_status(engine) == {"consumed": 5}, consumer.tail()
    handled = await notes(engine)
    assert sorted(handled) == sorted(recorded)
    for key in ("k-1", "k-2"):
        assert [n for k, n in handled if k == key] == [n for k, n in recorded if k == key]
