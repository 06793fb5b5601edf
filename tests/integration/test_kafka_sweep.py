"""A broker restart loses every record: the stale-published sweep publishes them again."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.clock import SystemClock
from chat_outbox.adapters.kafka import KafkaBus, KafkaSource
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.application.consume.consuming import Consumer
from chat_outbox.application.consume.loop import run_consumer
from chat_outbox.application.consume.persisting import UnitOfWorkHistoryWriter
from chat_outbox.application.relay.loop import run_relay, run_sweeper
from chat_outbox.entrypoints.local_broker import LocalBroker
from tests.integration.conftest import fast_kafka_options
from tests.integration.kafka_helpers import (
    FAST_POLLING,
    all_consumed,
    conversation_ids,
    count_by_status,
    eventually,
    history_event_ids,
    on_sqlite_and_postgresql,
    record_round_robin,
    relay_everything,
    unique_names,
)
from tests.integration.relays import leasing_relay

pytestmark = [pytest.mark.integration, on_sqlite_and_postgresql]


async def test_rows_published_into_a_broker_that_then_lost_them_are_swept_and_delivered(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """Published, never consumed, then the broker restarts empty: the sweep returns the
    rows to pending, the relay publishes them again, and each is consumed exactly once."""
    topic, group = unique_names("sweep")
    clock = SystemClock()
    async with LocalBroker() as broker:
        options = fast_kafka_options(broker.bootstrap_servers)
        await record_round_robin(uow, topic, conversation_ids("swept", 5), 40)
        bus = KafkaBus(options, provision_topic=topic)
        try:
            assert (await relay_everything(leasing_relay(uow, bus, clock))).published == 40
            await broker.restart()  # memory-only: the topic and its 40 records are gone
            assert (await count_by_status(engine)) == {"published": 40}

            source = KafkaSource(options, topic, group, provision=True)
            consumer = Consumer(source, UnitOfWorkHistoryWriter(uow), clock)
            stopping = asyncio.Event()
            sweeper = asyncio.create_task(
                run_sweeper(uow, clock, stopping, stale_after=timedelta(seconds=2)),
                name="sweeper",
            )
            tasks: list[asyncio.Task[object]] = [
                asyncio.create_task(run_consumer(consumer, poll_timeout=0.2), name="consumer"),
                asyncio.create_task(
                    run_relay(leasing_relay(uow, bus, clock), stopping, polling=FAST_POLLING),
                    name="relay",
                ),
                sweeper,
            ]
            try:
                await eventually(
                    lambda: all_consumed(engine, 40), "40 rows consumed", 60, watch=tasks
                )
            finally:
                stopping.set()
                consumer.stopping.set()
                await asyncio.gather(*tasks)
                await source.close()
        finally:
            await bus.close()
    assert sweeper.result() >= 40
    event_ids = await history_event_ids(engine)
    assert len(event_ids) == len(set(event_ids)) == 40
