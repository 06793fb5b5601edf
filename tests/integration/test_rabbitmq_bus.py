"""What is particular to RabbitMQ: keys hashed onto queues, single active consumers taking
over, persistent messages, a returned (unroutable) record, a password kept out of errors,
and the demo's relay and consumer processes on RabbitMQ."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path

import aio_pika
import pytest

from chat_outbox.adapters.rabbitmq import RabbitBus, RabbitOptions, queue_name, shard_for
from chat_outbox.application.ports import OutgoingRecord
from chat_outbox.entrypoints.local_broker import free_loopback_port
from tests.integration.buses import RABBITMQ_QUEUES, RabbitHarness, fetch_at_least, fetch_rest
from tests.integration.test_cli import chat_outbox

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("bus_endpoint", ["rabbitmq"], indirect=True),
]


def records(topic: str, keys: int, per_key: int) -> list[OutgoingRecord]:
    return [
        OutgoingRecord(topic, f"conversation-{k}", f"{k}/{n}".encode())
        for n in range(per_key)
        for k in range(keys)
    ]


async def test_every_record_of_a_key_comes_from_the_queue_its_hash_names(
    bus_harness: RabbitHarness,
) -> None:
    """A key's records all arrive from queue crc32(key) % N, and the keys spread over
    more than one queue."""
    await bus_harness.bus().publish(records(bus_harness.topic, 16, 3))

    fetched = await fetch_at_least(bus_harness.source(), 48)

    queues: defaultdict[bytes, set[int]] = defaultdict(set)
    for record in fetched:
        assert record.key is not None
        queues[record.key].add(record.partition)
    assert {key: shards for key, shards in queues.items()} == {
        key: {shard_for(key.decode(), RABBITMQ_QUEUES)} for key in queues
    }
    assert len(set().union(*queues.values())) > 1


async def test_a_waiting_consumer_takes_over_the_queues_of_one_that_dies(
    bus_harness: RabbitHarness,
) -> None:
    """With two consumers, each queue feeds only one of them at a time; when the active
    one dies, the other gets what it had not acknowledged."""
    first, second = bus_harness.source(), bus_harness.source()
    assert await first.fetch(10, 0.3) == []  # subscribes first: active on every queue
    assert await second.fetch(10, 0.3) == []
    await bus_harness.bus().publish(records(bus_harness.topic, 8, 2))

    assert len(await fetch_at_least(first, 16)) == 16
    assert await fetch_rest(second, quiet_for=0.5) == []
    await bus_harness.crash(first)

    assert len(await fetch_at_least(second, 16)) == 16


async def test_messages_are_persistent_and_carry_the_key_in_a_header(
    bus_harness: RabbitHarness,
) -> None:
    """A published message is marked persistent (delivery mode 2) on its key's queue."""
    record = OutgoingRecord(bus_harness.topic, "conversation-p", b"kept on disk")
    assert await bus_harness.bus().publish([record]) == [None]

    connection = await aio_pika.connect(bus_harness.url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(
            queue_name(bus_harness.topic, shard_for("conversation-p", RABBITMQ_QUEUES))
        )
        # basic.get is refused on single-active-consumer queues: subscribe instead.
        async with queue.iterator(no_ack=True) as deliveries:
            message = await asyncio.wait_for(anext(deliveries), 5)
    finally:
        await connection.close()
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert bytes(message.headers["message_key"]) == b"conversation-p"  # type: ignore[arg-type]


async def test_a_record_the_broker_cannot_route_is_retried_and_counted(
    bus_harness: RabbitHarness,
) -> None:
    """A record whose queue lost its binding comes back unroutable: a counted, retryable
    failure, while the batch's other records are confirmed."""
    bus = bus_harness.bus()
    assert await bus.publish([OutgoingRecord(bus_harness.topic, "warm-up", b"x")]) == [None]
    lost = shard_for("conversation-lost", RABBITMQ_QUEUES)
    kept = next(f"k{n}" for n in range(100) if shard_for(f"k{n}", RABBITMQ_QUEUES) != lost)
    connection = await aio_pika.connect(bus_harness.url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(queue_name(bus_harness.topic, lost))
        await queue.unbind(bus_harness.topic, str(lost))
    finally:
        await connection.close()

    results = await bus.publish(
        [
            OutgoingRecord(bus_harness.topic, "conversation-lost", b"nowhere to go"),
            OutgoingRecord(bus_harness.topic, kept, b"routed"),
        ]
    )

    failure, confirmed = results
    assert confirmed is None
    assert failure is not None
    assert (failure.retryable, failure.counted) == (True, True)
    assert "unroutable" in failure.reason


async def test_an_unreachable_broker_never_shows_the_password(bus_harness: RabbitHarness) -> None:
    """The failure reason for a broker that cannot be reached names no password."""
    url = f"amqp://chat:s3cret-pw@127.0.0.1:{free_loopback_port()}/"
    bus = RabbitBus(RabbitOptions(url=url, connect_timeout=1.0))
    try:
        [result] = await bus.publish([OutgoingRecord(bus_harness.topic, "k", b"v")])
    finally:
        await bus.close()
    assert result is not None
    assert "s3cret-pw" not in result.reason
    assert "s3cret-pw" not in repr(RabbitOptions(url=url))


async def test_the_demo_runs_the_pipeline_on_rabbitmq(
    bus_harness: RabbitHarness, tmp_path: Path
) -> None:
    """CHAT_OUTBOX_BUS=rabbitmq demo relays and consumes every message it records, in
    relay and consumer processes of their own."""
    env = {
        "CHAT_OUTBOX_BUS": "rabbitmq",
        "CHAT_OUTBOX_RABBITMQ_URL": bus_harness.url,
        "CHAT_OUTBOX_RABBITMQ_QUEUES": str(RABBITMQ_QUEUES),
        "CHAT_OUTBOX_TOPIC": bus_harness.topic,
    }
    args = ("demo", "--messages", "12", "--conversations", "3")

    result = await asyncio.to_thread(chat_outbox, *args, cwd=tmp_path, env=env)

    assert result.returncode == 0, result.stderr[-3000:]
    assert "All 12 recorded messages were relayed and read back" in result.stdout
    assert '"bus": "rabbitmq"' in result.stderr


async def test_a_topology_the_broker_refuses_costs_no_attempt_and_heals(
    bus_harness: RabbitHarness,
) -> None:
    """While a queue of the topic exists with other arguments, every publish fails
    uncounted instead of raising; once it is gone, the next publish declares and succeeds."""
    connection = await aio_pika.connect(bus_harness.url)
    channel = await connection.channel()
    clash = await channel.declare_queue(queue_name(bus_harness.topic, 0), durable=True)
    bus = bus_harness.bus()
    record = OutgoingRecord(bus_harness.topic, "conversation-t", b"v")
    try:
        [refused] = await bus.publish([record])
    finally:
        await clash.delete()
        await connection.close()

    assert refused is not None
    assert (refused.retryable, refused.counted) == (True, False)
    assert "PRECONDITION_FAILED" in refused.reason
    assert await bus.publish([record]) == [None]
