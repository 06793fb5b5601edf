"""Record, relay and consume through the real broker: exactly-once effect, order, redelivery,
and poison records parked in the dead-letter topic."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.clock import SystemClock
from chat_outbox.adapters.kafka import KafkaBus, KafkaOptions, KafkaSource, dlq_topic, ensure_topics
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.application.consume.consuming import Consumer
from chat_outbox.application.consume.persisting import UnitOfWorkHistoryWriter
from chat_outbox.application.ports import IncomingRecord
from tests.integration.conftest import fast_kafka_options
from tests.integration.kafka_helpers import (
    consume_until,
    conversation_ids,
    count_by_status,
    history_event_ids,
    on_sqlite_and_postgresql,
    read_topic,
    record_round_robin,
    relay_everything,
    unique_names,
)
from tests.integration.relays import leasing_relay

pytestmark = [pytest.mark.integration, on_sqlite_and_postgresql]


class SimulatedCrash(Exception):
    """The consumer process died between its database commit and its offset commit."""


class CrashBeforeOffsetCommit(KafkaSource):
    """A KafkaSource whose first acknowledge dies instead of committing the offsets."""

    def __init__(self, options: KafkaOptions, topic: str, group_id: str) -> None:
        super().__init__(options, topic, group_id, provision=True)
        self.crashed_on: list[IncomingRecord] = []

    async def acknowledge(self, records: Sequence[IncomingRecord]) -> None:
        if not self.crashed_on:
            self.crashed_on = list(records)
            raise SimulatedCrash(f"died before committing the offsets of {len(records)} records")
        await super().acknowledge(records)


async def test_records_persisted_before_a_crash_are_redelivered_and_not_duplicated(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory, kafka_bootstrap: str
) -> None:
    """A consumer that dies after its database commit but before its offset commit leaves
    its batch to the next group member, which finds every record already persisted."""
    topic, group = unique_names("crash")
    # The dead member keeps its partitions until its session times out: keep that short.
    options = fast_kafka_options(
        kafka_bootstrap, session_timeout_ms=2000, heartbeat_interval_ms=200
    )
    clock = SystemClock()
    writer = UnitOfWorkHistoryWriter(uow)
    await record_round_robin(uow, topic, conversation_ids("crash", 5), 100)
    bus = KafkaBus(options, provision_topic=topic)
    try:
        assert (await relay_everything(leasing_relay(uow, bus, clock))).published == 100
    finally:
        await bus.close()

    crashing = CrashBeforeOffsetCommit(options, topic, group)
    try:
        with pytest.raises(SimulatedCrash):
            await consume_until(Consumer(crashing, writer, clock), engine, expected=100)
    finally:
        await crashing.close()
    persisted_before_crash = len(await history_event_ids(engine))
    successor = KafkaSource(options, topic, group)
    try:
        report = await consume_until(
            Consumer(successor, writer, clock), engine, expected=100, received=100
        )
    finally:
        await successor.close()

    history = await history_event_ids(engine)
    assert persisted_before_crash == len(crashing.crashed_on) > 0
    assert report.duplicates >= persisted_before_crash
    assert report.received >= 100
    assert len(history) == len(set(history)) == 100
    assert await count_by_status(engine) == {"consumed": 100}


def envelope_of_unknown_type(conversation: str) -> bytes:
    document = {
        "event_id": str(uuid.uuid4()),
        "type": "order_created",
        "schema_version": 1,
        "occurred_at": datetime.now(UTC).isoformat(),
        "key": conversation,
        "outbox_id": 1,
        "payload": {"user_id": 7, "conversation_id": conversation, "role": "user", "message": "x"},
    }
    return json.dumps(document).encode()


async def test_poison_records_go_to_the_dead_letter_topic_and_valid_ones_after_them_persist(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory, kafka_bootstrap: str
) -> None:
    """Undecodable records on the chat topic land in `<topic>.dlq` with a `dlq_reason`
    header naming the problem, and the valid records behind them on the same partition
    are persisted."""
    topic, group = unique_names("poison")
    options = fast_kafka_options(kafka_bootstrap)
    clock = SystemClock()
    await ensure_topics(options, topic)
    poison = {
        b"not json": "not JSON",
        b"\xff\xfe": "not valid UTF-8",
        envelope_of_unknown_type("poison-0"): "unknown_type: no handler for event type "
        "'order_created' here",
    }
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for value in poison:
            await producer.send_and_wait(topic, value=value, key=b"poison-0")
    finally:
        await producer.stop()
    await record_round_robin(uow, topic, ["poison-0", "poison-1"], 20)
    bus = KafkaBus(options, provision_topic=topic)
    source = KafkaSource(options, topic, group, provision=True)
    try:
        await relay_everything(leasing_relay(uow, bus, clock))
        report = await consume_until(
            Consumer(source, UnitOfWorkHistoryWriter(uow), clock),
            engine,
            20,
            received=20 + len(poison),
        )
    finally:
        await bus.close()
        await source.close()

    parked = await read_topic(kafka_bootstrap, dlq_topic(topic), expected=len(poison))
    reasons = {bytes(r.value): dict(r.headers)["dlq_reason"].decode() for r in parked}
    assert reasons.keys() == poison.keys()
    for value, reason in reasons.items():
        assert poison[value] in reason
    assert report.dead_lettered == len(poison)
    assert len(set(await history_event_ids(engine))) == 20
    assert await count_by_status(engine) == {"consumed": 20}
