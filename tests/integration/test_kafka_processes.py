"""`chat-outbox relay` and `chat-outbox consume` as real processes against the real broker."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.clock import SystemClock
from chat_outbox.adapters.kafka import KafkaBus
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.application.operate.operations import read_history
from tests.integration.conftest import fast_kafka_options
from tests.integration.kafka_helpers import (
    conversation_ids,
    count_by_status,
    eventually,
    history_event_ids,
    on_sqlite_and_postgresql,
    record_round_robin,
    relay_everything,
)
from tests.integration.processes import Launcher
from tests.integration.relays import leasing_relay

pytestmark = [pytest.mark.integration, on_sqlite_and_postgresql]


async def test_relay_and_consumer_processes_stopped_mid_stream_lose_and_duplicate_nothing(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory, launcher: Launcher
) -> None:
    """Both processes exit 0 on SIGTERM while messages flow, and after a restart every
    recorded message is in chat history once, in recording order."""
    topic = launcher.env["CHAT_OUTBOX_TOPIC"]
    conversations = conversation_ids(f"proc-{topic[-6:]}", 12)
    waves: list[dict[str, list[str]]] = []

    relay, consumer = await launcher.spawn("relay"), await launcher.spawn("consume")
    waves.append(await record_round_robin(uow, topic, conversations, 200))
    await eventually(lambda: launcher.consumed_while_running(engine, 1), "a consumed row", 60)
    trickle = asyncio.create_task(
        record_round_robin(uow, topic, conversations, 200, start=200, batch=10, pause=0.02)
    )
    await asyncio.sleep(0.2)
    relay.stop()
    consumer.stop()
    waves.append(await trickle)
    assert await relay.exit_code() == 0, relay.tail()
    assert await consumer.exit_code() == 0, consumer.tail()

    relay, consumer = await launcher.spawn("relay"), await launcher.spawn("consume")
    waves.append(await record_round_robin(uow, topic, conversations, 200, start=400))
    await eventually(lambda: launcher.consumed_while_running(engine, 600), "600 consumed", 90)
    relay.stop()
    consumer.stop()
    assert await relay.exit_code() == 0, relay.tail()
    assert await consumer.exit_code() == 0, consumer.tail()

    history = await history_event_ids(engine)
    assert len(history) == len(set(history)) == 600
    assert await count_by_status(engine) == {"consumed": 600}
    for conversation in conversations:
        entries = await read_history(uow, conversation)
        assert [e.message for e in entries] == [text for w in waves for text in w[conversation]]


async def test_consume_with_idle_exit_persists_what_is_there_then_exits_zero(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory, launcher: Launcher, kafka_bootstrap: str
) -> None:
    """`consume --idle-exit 2` persists the records waiting in the topic, then exits 0 on
    its own once nothing more comes."""
    topic = launcher.env["CHAT_OUTBOX_TOPIC"]
    await record_round_robin(uow, topic, conversation_ids(f"idle-{topic[-6:]}", 4), 20)
    bus = KafkaBus(fast_kafka_options(kafka_bootstrap), provision_topic=topic)
    try:
        assert (await relay_everything(leasing_relay(uow, bus, SystemClock()))).published == 20
    finally:
        await bus.close()

    consumer = await launcher.spawn("consume", "--idle-exit", "2")

    assert await consumer.exit_code(within=60) == 0, consumer.tail()
    assert await count_by_status(engine) == {"consumed": 20}, consumer.tail()
    assert len(set(await history_event_ids(engine))) == 20
