"""A broker that is down at start-up, then frozen mid-run: the relay backs off and loses nothing."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.clock import SystemClock
from chat_outbox.adapters.kafka import KafkaBus, KafkaSource
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.application.consume.consuming import Consumer
from chat_outbox.application.consume.persisting import UnitOfWorkHistoryWriter
from chat_outbox.domain import RetryPolicy
from chat_outbox.entrypoints.local_broker import LocalBroker, free_loopback_port
from tests.integration.conftest import fast_kafka_options
from tests.integration.kafka_helpers import (
    all_consumed,
    conversation_ids,
    count_by_status,
    eventually,
    history_event_ids,
    on_sqlite_and_postgresql,
    outbox_rows,
    record_round_robin,
    running,
    unique_names,
)
from tests.integration.relays import leasing_relay

pytestmark = [pytest.mark.integration, on_sqlite_and_postgresql]

PAUSE_S = 10.0


async def heads_backed_off(engine: AsyncEngine, conversations: int, after_id: int = 0) -> bool:
    """Whether the first row after `after_id` of every conversation has failed at least
    once (its last_error is set while it stays pending); the rows behind a head wait for it
    (per-conversation order). An unreachable broker costs no attempt: retry_count stays 0."""
    heads: dict[str, dict[str, Any]] = {}
    for row in await outbox_rows(engine):
        if row["id"] > after_id:
            heads.setdefault(row["message_key"], row)
    return len(heads) == conversations and all(
        row["status"] == "pending" and row["last_error"] and row["retry_count"] == 0
        for row in heads.values()
    )


async def test_messages_recorded_while_the_broker_is_down_or_frozen_are_delivered_once(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """The relay backs off while no broker listens and while the broker is frozen, and in
    the end every message is consumed exactly once and none is dead."""
    topic, group = unique_names("outage")
    broker = LocalBroker(port=free_loopback_port())
    clock = SystemClock()
    relay_options = fast_kafka_options(broker.bootstrap_servers, request_timeout_ms=2000)
    bus = KafkaBus(relay_options, provision_topic=topic)
    relay = leasing_relay(uow, bus, clock, RetryPolicy(cap=timedelta(seconds=2)))
    # The default 5 s, not 2 s: the broker holds a JoinGroup ~3 s and aiokafka bounds the
    # JoinGroup by request_timeout_ms, so a 2 s consumer would never join its group.
    consumer_options = fast_kafka_options(broker.bootstrap_servers)
    source = KafkaSource(consumer_options, topic, group, provision=True)
    conversations = conversation_ids("outage", 10)
    try:
        async with running(relay, Consumer(source, UnitOfWorkHistoryWriter(uow), clock)) as tasks:
            await record_round_robin(uow, topic, conversations, 100)
            await eventually(
                lambda: heads_backed_off(engine, len(conversations)),
                "retries while no broker listens",
                30,
                watch=tasks,
            )
            assert await count_by_status(engine) == {"pending": 100}

            await broker.start()
            await eventually(
                lambda: all_consumed(engine, 100), "the first 100 consumed", 60, watch=tasks
            )
            first_wave_ends = max(row["id"] for row in await outbox_rows(engine))
            broker.pause()
            paused_at = time.monotonic()
            try:
                await record_round_robin(uow, topic, conversations, 100, start=100)
                await eventually(
                    lambda: heads_backed_off(engine, len(conversations), first_wave_ends),
                    "retries while the broker is frozen",
                    PAUSE_S,
                    watch=tasks,
                )
                await asyncio.sleep(max(0.0, PAUSE_S - (time.monotonic() - paused_at)))
            finally:
                broker.resume()
            await eventually(lambda: all_consumed(engine, 200), "all 200 consumed", 60, watch=tasks)
    finally:
        await bus.close()
        await source.close()
        await broker.stop()

    history = await history_event_ids(engine)
    assert len(history) == len(set(history)) == 200
    assert await count_by_status(engine) == {"consumed": 200}
