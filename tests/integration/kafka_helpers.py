"""Helpers for the Kafka integration tests: names, recording, waiting, and reading topics."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.clock import SystemClock, uuid4_event_id
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.adapters.sql.tables import chat_history, outbox_messages
from chat_outbox.application.consume.consuming import Consumer, ConsumeReport
from chat_outbox.application.consume.loop import run_consumer
from chat_outbox.application.record.recording import record_chat_message
from chat_outbox.application.relay.loop import Polling, run_relay
from chat_outbox.application.relay.relaying import Relay, RelayReport
from chat_outbox.domain import ChatMessage, Role
from chat_outbox.entrypoints.config import Settings

KAFKA_BACKENDS = ("sqlite", "postgresql")
on_sqlite_and_postgresql = pytest.mark.parametrize("migrated_engine", KAFKA_BACKENDS, indirect=True)
"""Issue 3 asks for the broker tests on these two; the conftest `engine` truncates per test."""

STOP_WITHIN_S = 30.0
FAST_POLLING = Polling(minimum=0.05, maximum=0.2)


def unique_names(what: str) -> tuple[str, str]:
    """A topic and a consumer group of their own, so tests share a broker independently."""
    suffix = uuid.uuid4().hex[:12]
    return f"chat-{what}-{suffix}", f"history-{what}-{suffix}"


def fast_kafka_settings(
    database_url: str, bootstrap: str, what: str, **overrides: object
) -> Settings:
    """Public-API settings on the broker, with a topic and consumer group of their own and
    the short group timeouts that keep the consumer's join near 3 s."""
    topic, group = unique_names(what)
    return Settings.of(
        database_url=database_url,
        bus="kafka",
        kafka_bootstrap_servers=bootstrap,
        topic=topic,
        consumer_group=group,
        kafka_fetch_max_wait_ms=10,
        kafka_session_timeout_ms=6000,
        kafka_heartbeat_interval_ms=500,
        kafka_rebalance_timeout_ms=2000,
        **overrides,
    )


def conversation_ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{index}" for index in range(count)]


async def record_round_robin(
    uow: SqlUnitOfWorkFactory,
    topic: str,
    conversations: Sequence[str],
    count: int,
    start: int = 0,
    *,
    batch: int = 100,
    pause: float = 0.0,
) -> dict[str, list[str]]:
    """Record `count` messages spread over the conversations, `batch` per transaction with
    `pause` seconds between transactions; return each conversation's texts in order."""
    clock = SystemClock()
    recorded: dict[str, list[str]] = {conversation: [] for conversation in conversations}
    for first in range(start, start + count, batch):
        if first > start:
            await asyncio.sleep(pause)
        async with uow() as unit:
            for n in range(first, min(first + batch, start + count)):
                conversation = conversations[n % len(conversations)]
                text = f"{conversation} message #{n}"
                await record_chat_message(
                    unit,
                    ChatMessage(7, conversation, Role.USER, text),
                    topic=topic,
                    clock=clock,
                    event_ids=uuid4_event_id,
                )
                recorded[conversation].append(text)
            await unit.commit()
    return recorded


async def outbox_rows(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as connection:
        query = select(outbox_messages).order_by(outbox_messages.c.id)
        return [dict(row) for row in (await connection.execute(query)).mappings()]


async def history_event_ids(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        return list((await connection.execute(select(chat_history.c.event_id))).scalars())


async def count_by_status(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as connection:
        query = select(outbox_messages.c.status, func.count()).group_by(outbox_messages.c.status)
        return {status: count for status, count in await connection.execute(query)}


async def all_consumed(engine: AsyncEngine, expected: int) -> bool:
    return (await count_by_status(engine)).get("consumed", 0) >= expected


async def eventually(
    condition: Callable[[], Awaitable[bool]],
    what: str,
    within: float,
    *,
    watch: Sequence[asyncio.Task[Any]] = (),
) -> None:
    """Poll until `condition` holds; fail naming `what` if the deadline passes first, or at
    once if a watched background task ended (its exception, if any, is raised)."""
    deadline = time.monotonic() + within
    while not await condition():
        for task in watch:
            if task.done():
                task.result()
                pytest.fail(f"{task.get_name()} ended while waiting for {what}")
        if time.monotonic() >= deadline:
            pytest.fail(f"gave up after {within:.0f} s waiting for {what}")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def running(relay: Relay, consumer: Consumer) -> AsyncIterator[list[asyncio.Task[Any]]]:
    """Run the relay and consumer loops as tasks; on exit stop both gracefully."""
    stopping = asyncio.Event()
    tasks: list[asyncio.Task[Any]] = [
        asyncio.create_task(run_relay(relay, stopping, polling=FAST_POLLING), name="relay loop"),
        asyncio.create_task(run_consumer(consumer, poll_timeout=0.2), name="consumer loop"),
    ]
    try:
        yield tasks
    finally:
        stopping.set()
        consumer.stopping.set()
        done, pending = await asyncio.wait(tasks, timeout=STOP_WITHIN_S)
        for task in pending:
            task.cancel()
        for task in done:
            task.result()
        if pending:
            pytest.fail(f"{[t.get_name() for t in pending]} did not stop in {STOP_WITHIN_S} s")


async def relay_everything(relay: Relay, within: float = 30.0) -> RelayReport:
    """Relay rounds until one claims nothing; the totals of the rounds."""
    reports: list[RelayReport] = []
    deadline = time.monotonic() + within
    while (report := await relay.relay_due()).claimed:
        reports.append(report)
        if time.monotonic() >= deadline:
            pytest.fail(f"the relay still had rows to claim after {within:.0f} s")
    return RelayReport(
        claimed=sum(r.claimed for r in reports),
        published=sum(r.published for r in reports),
        retried=sum(r.retried for r in reports),
        dead=sum(r.dead for r in reports),
        unchanged=sum(r.unchanged for r in reports),
    )


async def consume_until(
    consumer: Consumer,
    engine: AsyncEngine,
    expected: int,
    *,
    received: int = 0,
    within: float = 45.0,
) -> ConsumeReport:
    """Consume batches until `expected` outbox rows are consumed and at least `received`
    records were delivered; the totals of the batches."""
    totals = ConsumeReport()
    deadline = time.monotonic() + within
    while totals.received < received or not await all_consumed(engine, expected):
        if time.monotonic() >= deadline:
            pytest.fail(
                f"after {within:.0f} s: {totals}, expected {expected} consumed rows "
                f"and {received} received records"
            )
        report = await consumer.consume_batch(timeout=0.5)
        totals = ConsumeReport(
            received=totals.received + report.received,
            persisted=totals.persisted + report.persisted,
            duplicates=totals.duplicates + report.duplicates,
            dead_lettered=totals.dead_lettered + report.dead_lettered,
        )
    return totals


async def read_topic(bootstrap: str, topic: str, expected: int, within: float = 30.0) -> list[Any]:
    """Every record of `topic` from the earliest offset, read without a consumer group:
    at least `expected` of them, plus whatever one more short poll finds."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=10,
        request_timeout_ms=5000,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = time.monotonic() + within
        while len(records) < expected:
            if time.monotonic() >= deadline:
                pytest.fail(f"read {len(records)} of {expected} records from {topic}")
            batches = await consumer.getmany(timeout_ms=500)
            records.extend(record for batch in batches.values() for record in batch)
        batches = await consumer.getmany(timeout_ms=500)
        records.extend(record for batch in batches.values() for record in batch)
    finally:
        await consumer.stop()
    return records
