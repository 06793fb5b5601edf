"""Record, relay and consume through each real broker: the same pipeline, the same result."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.clock import SystemClock
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.application.consume.consuming import Consumer
from chat_outbox.application.consume.persisting import UnitOfWorkHistoryWriter
from chat_outbox.application.operate.operations import read_history
from tests.integration.buses import BROKER_BUS_NAMES, BusHarness
from tests.integration.kafka_helpers import (
    all_consumed,
    conversation_ids,
    eventually,
    history_event_ids,
    on_sqlite_and_postgresql,
    outbox_rows,
    record_round_robin,
    running,
)
from tests.integration.relays import leasing_relay

pytestmark = [
    pytest.mark.integration,
    on_sqlite_and_postgresql,
    pytest.mark.parametrize("bus_endpoint", BROKER_BUS_NAMES, indirect=True),
]


async def test_a_thousand_messages_reach_history_exactly_once_and_in_recording_order(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory, bus_harness: BusHarness
) -> None:
    """1,000 messages over 50 conversations, relayed and consumed concurrently, are each
    persisted once and read back per conversation in recording order."""
    topic = bus_harness.topic
    clock = SystemClock()
    conversations = conversation_ids(f"e2e-{uuid.uuid4().hex[:8]}", 50)
    relay = leasing_relay(uow, bus_harness.bus(), clock)
    consumer = Consumer(bus_harness.source(), UnitOfWorkHistoryWriter(uow), clock)
    async with running(relay, consumer) as tasks:
        recorded = await record_round_robin(uow, topic, conversations, 500)
        later = await record_round_robin(uow, topic, conversations, 500, start=500)
        await eventually(lambda: all_consumed(engine, 1000), "1000 consumed rows", 60, watch=tasks)

    history = await history_event_ids(engine)
    rows = await outbox_rows(engine)
    assert len(history) == len(set(history)) == 1000
    assert set(history) == {row["event_id"] for row in rows}
    assert {row["status"] for row in rows} == {"consumed"}
    for conversation in conversations:
        entries = await read_history(uow, conversation)
        assert [e.message for e in entries] == recorded[conversation] + later[conversation]
