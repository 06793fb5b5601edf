"""Integration tests for the local Tansu broker used by tests and the demo."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import RequestTimedOutError

from chat_outbox.entrypoints.local_broker import LocalBroker, LocalBrokerUnavailable

pytestmark = pytest.mark.integration

# Tansu rebalances slowly; these settings bring a group join down to about 3 s.
FAST_GROUP = {
    "heartbeat_interval_ms": 500,
    "session_timeout_ms": 6000,
    "rebalance_timeout_ms": 2000,
    "fetch_max_wait_ms": 10,
}


@pytest.fixture
async def broker() -> AsyncIterator[LocalBroker]:
    async with LocalBroker() as running:
        yield running


@pytest.fixture
async def producer(broker: LocalBroker) -> AsyncIterator[AIOKafkaProducer]:
    client = AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap_servers, acks="all", request_timeout_ms=2000
    )
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _topics(broker: LocalBroker) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    await admin.start()
    try:
        topics: list[str] = await admin.list_topics()
        return topics
    finally:
        await admin.close()


async def test_keyed_record_with_headers_round_trips(
    broker: LocalBroker, producer: AIOKafkaProducer
) -> None:
    """A keyed record with headers produced to the broker on a loopback port is consumed back."""
    assert broker.bootstrap_servers == f"127.0.0.1:{broker.port}"
    await broker.create_topic("chat.messages", partitions=3)
    headers = [("message-id", b"m-1"), ("content-type", b"application/json")]
    sent = await producer.send_and_wait(
        "chat.messages", b'{"text":"hi"}', key=b"conv-1", headers=headers
    )

    consumer = AIOKafkaConsumer(
        "chat.messages",
        bootstrap_servers=broker.bootstrap_servers,
        group_id="round-trip",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **FAST_GROUP,
    )
    await consumer.start()
    try:
        record = await consumer.getone()
    finally:
        await consumer.stop()

    assert (record.partition, record.offset) == (sent.partition, sent.offset)
    assert record.key == b"conv-1"
    assert record.value == b'{"text":"hi"}'
    assert list(record.headers) == headers


async def test_create_topic_makes_requested_partitions(
    broker: LocalBroker, producer: AIOKafkaProducer
) -> None:
    """create_topic creates exactly the requested partitions and tolerates an existing topic."""
    await broker.create_topic("three", partitions=3)
    await broker.create_topic("three", partitions=3)
    await broker.create_topic("default")

    assert await producer.partitions_for("three") == {0, 1, 2}
    assert await producer.partitions_for("default") == set(range(6))


async def test_stop_is_prompt_with_client_connected_and_idempotent(
    broker: LocalBroker, producer: AIOKafkaProducer
) -> None:
    """stop() ends the process within seconds despite a client; a second stop is a no-op."""
    await broker.create_topic("t", partitions=1)
    await producer.send_and_wait("t", b"connected")
    pid = broker.pid
    assert pid is not None

    started = time.monotonic()
    await broker.stop()
    assert time.monotonic() - started < 4.0
    assert not broker.running
    assert broker.pid is None
    assert not _process_exists(pid)

    await broker.stop()


async def test_restart_reuses_port_and_loses_topics(broker: LocalBroker) -> None:
    """restart() serves again on the same port with an empty broker, so topics must be recreated."""
    await broker.create_topic("before", partitions=1)
    port, old_pid = broker.port, broker.pid

    await broker.restart()

    assert broker.port == port
    assert broker.pid != old_pid
    assert "before" not in await _topics(broker)
    await broker.create_topic("before", partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
    await producer.start()
    try:
        sent = await producer.send_and_wait("before", b"after-restart")
    finally:
        await producer.stop()
    assert sent.offset == 0


async def test_paused_broker_times_out_then_recovers(
    broker: LocalBroker, producer: AIOKafkaProducer
) -> None:
    """A paused broker times produce requests out, and serves them again once resumed."""
    await broker.create_topic("t", partitions=1)
    await producer.send_and_wait("t", b"before")

    broker.pause()
    try:
        with pytest.raises(RequestTimedOutError):
            await producer.send_and_wait("t", b"while-paused")
    finally:
        broker.resume()

    assert (await producer.send_and_wait("t", b"after")).topic == "t"


async def test_start_on_taken_port_fails_with_log() -> None:
    """Starting on a port someone else holds raises LocalBrokerUnavailable with the broker log."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        local = LocalBroker(port=squatter.getsockname()[1])
        with pytest.raises(LocalBrokerUnavailable, match="exited with code"):
            await local.start(timeout=10)
    assert not local.running
