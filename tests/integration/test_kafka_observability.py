"""Metrics and trace context through the real processes and the real broker."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.clock import SystemClock
from chat_outbox.adapters.kafka import KafkaBus, KafkaSource
from chat_outbox.adapters.metrics import PrometheusMetrics
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from tests.integration.conftest import fast_kafka_options
from tests.integration.http_helpers import free_port
from tests.integration.kafka_helpers import (
    conversation_ids,
    eventually,
    record_round_robin,
    relay_everything,
    unique_names,
)
from tests.integration.processes import Launcher
from tests.integration.relays import leasing_relay

pytestmark = pytest.mark.integration
on_sqlite = pytest.mark.parametrize("migrated_engine", ["sqlite"], indirect=True)

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
async def launcher(
    engine: AsyncEngine, kafka_bootstrap: str, tmp_path: Path
) -> AsyncIterator[Launcher]:
    """CLI processes on the test's database and broker, with metrics ports and debug logs."""
    topic, group = unique_names("observe")
    env = {key: value for key, value in os.environ.items() if not key.startswith("CHAT_OUTBOX_")}
    env.update(
        {
            "CHAT_OUTBOX_DATABASE_URL": engine.url.render_as_string(hide_password=False),
            "CHAT_OUTBOX_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "CHAT_OUTBOX_TOPIC": topic,
            "CHAT_OUTBOX_CONSUMER_GROUP": group,
            "CHAT_OUTBOX_KAFKA_SESSION_TIMEOUT_MS": "6000",
            "CHAT_OUTBOX_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
            "CHAT_OUTBOX_KAFKA_REBALANCE_TIMEOUT_MS": "2000",
            "CHAT_OUTBOX_KAFKA_FETCH_MAX_WAIT_MS": "10",
            "CHAT_OUTBOX_LOG_FORMAT": "json",
            "CHAT_OUTBOX_METRICS_REFRESH_SECONDS": "0.2",
        }
    )
    spawner = Launcher(env, tmp_path)
    try:
        yield spawner
    finally:
        await spawner.kill_leftovers()


async def scrape(port: int) -> str:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"http://127.0.0.1:{port}/metrics")).text


def sample(exposition: str, series: str) -> float | None:
    match = re.search(rf"^{re.escape(series)} (\S+)$", exposition, re.MULTILINE)
    return None if match is None else float(match[1])


def lag_total(exposition: str) -> float:
    return sum(
        float(v) for v in re.findall(r"^chat_outbox_consumer_lag\{.*\} (\S+)$", exposition, re.M)
    )


@on_sqlite
async def test_a_traceparent_sent_reaches_the_consumers_log_and_metrics_are_scraped(
    launcher: Launcher, uow: SqlUnitOfWorkFactory, engine: AsyncEngine
) -> None:
    """`send --traceparent` is relayed and consumed by the real processes: the consumer's
    log line for that message carries the traceparent, and the relay's and the consumer's
    metrics ports report the run (rows, latencies, lag back to zero)."""
    topic = launcher.env["CHAT_OUTBOX_TOPIC"]
    send = await launcher.spawn(
        "send", "--user-id", "7", "--conversation-id", f"traced-{topic[-6:]}",
        "--role", "user", "--message", "follow me", "--traceparent", TRACEPARENT,
    )  # fmt: skip
    assert await send.exit_code() == 0, send.tail()
    send.stopping = True  # it was meant to exit: the launcher's died-early check skips it
    traced_id = json.loads(send.log.read_text().splitlines()[-1])["outbox_id"]
    await record_round_robin(uow, topic, conversation_ids(f"untraced-{topic[-6:]}", 2), 4)

    relay_port, consumer_port = free_port(), free_port()
    launcher.env["CHAT_OUTBOX_METRICS_PORT"] = str(relay_port)
    relay = await launcher.spawn("relay")
    launcher.env["CHAT_OUTBOX_METRICS_PORT"] = str(consumer_port)
    launcher.env["CHAT_OUTBOX_LOG_LEVEL"] = "debug"  # a line per consumed message
    consumer = await launcher.spawn("consume")

    async def relay_saw_all_consumed() -> bool:
        await launcher.consumed_while_running(engine, 0)  # fails early if one died
        try:
            text = await scrape(relay_port)
        except httpx.TransportError:
            return False
        return sample(text, 'chat_outbox_rows{status="consumed"}') == 5

    await eventually(relay_saw_all_consumed, "the relay's gauges to show 5 consumed", 60)
    relayed, consumed = await scrape(relay_port), await scrape(consumer_port)
    relay.stop()
    consumer.stop()
    assert await relay.exit_code() == 0, relay.tail()
    assert await consumer.exit_code() == 0, consumer.tail()

    assert sample(relayed, "chat_outbox_publish_latency_seconds_count") == 5
    assert sample(relayed, "chat_outbox_oldest_pending_age_seconds") == 0
    assert sample(relayed, "chat_outbox_publish_retries_total") == 0
    assert sample(consumed, "chat_outbox_end_to_end_latency_seconds_count") == 5
    assert sample(consumed, "chat_outbox_consume_latency_seconds_count") == 5
    assert sample(consumed, "chat_outbox_dlq_records_total") == 0
    assert lag_total(consumed) == 0

    lines = [
        json.loads(line) for line in consumer.log.read_text().splitlines() if line.startswith("{")
    ]
    handled = {line["outbox_id"]: line for line in lines if line["event"] == "message_consumed"}
    assert handled[traced_id]["traceparent"] == TRACEPARENT
    assert sum("traceparent" in line for line in handled.values()) == 1


@on_sqlite
async def test_consumer_lag_comes_from_the_fetch_high_water_mark(
    uow: SqlUnitOfWorkFactory, kafka_bootstrap: str
) -> None:
    """With 20 records on a one-partition topic, a fetch of 5 reports a lag of 15: the
    high-water mark of the fetch response minus the consumer's position."""
    topic, group = unique_names("lag")
    options = fast_kafka_options(kafka_bootstrap, topic_partitions=1)
    await record_round_robin(uow, topic, conversation_ids(f"lag-{topic[-6:]}", 20), 20)
    bus = KafkaBus(options, provision_topic=topic)
    try:
        assert (await relay_everything(leasing_relay(uow, bus, SystemClock()))).published == 20
    finally:
        await bus.close()

    metrics = PrometheusMetrics(CollectorRegistry())
    source = KafkaSource(options, topic, group, metrics=metrics)
    try:
        fetched: list[object] = []
        deadline = time.monotonic() + 30
        while not fetched and time.monotonic() < deadline:
            fetched = list(await source.fetch(max_records=5, timeout=0.5))
        assert len(fetched) == 5
        labels = {"topic": topic, "partition": "0"}
        assert metrics.registry.get_sample_value("chat_outbox_consumer_lag", labels) == 15
        while len(fetched) < 20 and time.monotonic() < deadline:
            fetched.extend(await source.fetch(max_records=20, timeout=0.5))
        await asyncio.sleep(0)
        assert metrics.registry.get_sample_value("chat_outbox_consumer_lag", labels) == 0
    finally:
        await source.close()
