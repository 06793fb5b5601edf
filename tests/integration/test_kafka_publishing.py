"""What the relay puts on the real broker: one outcome per message, headers, keys, partitions."""

from __future__ import annotations

import uuid
from collections import defaultdict

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.clock import SystemClock, uuid4_event_id
from chat_outbox.adapters.kafka import KafkaBus
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.application.record.recording import RecordChatMessage
from chat_outbox.domain import BIZ_TYPE_CHAT_HISTORY, SCHEMA_VERSION, ChatMessage, Envelope, Role
from tests.integration.conftest import fast_kafka_options
from tests.integration.kafka_helpers import (
    conversation_ids,
    on_sqlite_and_postgresql,
    outbox_rows,
    read_topic,
    record_round_robin,
    relay_everything,
    unique_names,
)
from tests.integration.relays import leasing_relay

pytestmark = [pytest.mark.integration, on_sqlite_and_postgresql]


async def relay_all_to(uow: SqlUnitOfWorkFactory, bootstrap: str, topic: str) -> None:
    bus = KafkaBus(fast_kafka_options(bootstrap), provision_topic=topic)
    try:
        await relay_everything(leasing_relay(uow, bus, SystemClock()))
    finally:
        await bus.close()


async def test_a_record_over_the_size_limit_is_dead_while_its_batch_mates_are_published(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory, kafka_bootstrap: str
) -> None:
    """With max_request_size=2000, the oversized message of a batch goes dead at once
    naming MessageSizeTooLargeError, and the small ones sent with it reach the topic."""
    topic, _ = unique_names("size")
    record = RecordChatMessage(uow, SystemClock(), uuid4_event_id, topic)
    texts = ["small 1", "small 2", "x" * 3000, "small 3", "small 4"]
    # One conversation each: a later message of the big one's conversation would be held back.
    conversations = conversation_ids(f"size-{uuid.uuid4().hex[:8]}", len(texts))
    recorded = [
        await record(ChatMessage(7, conversation, Role.USER, text))
        for conversation, text in zip(conversations, texts, strict=True)
    ]
    big = recorded[2]
    bus = KafkaBus(fast_kafka_options(kafka_bootstrap, max_request_size=2000), topic)
    try:
        report = await leasing_relay(uow, bus, SystemClock()).relay_due()
    finally:
        await bus.close()

    assert (report.claimed, report.published, report.dead) == (5, 4, 1)
    rows = {row["id"]: row for row in await outbox_rows(engine)}
    assert rows[big.id]["status"] == "dead"
    assert "MessageSizeTooLargeError" in rows[big.id]["last_error"]
    small = {m.event_id for m in recorded if m is not big}
    assert {rows[m.id]["status"] for m in recorded if m is not big} == {"published"}
    on_topic = await read_topic(kafka_bootstrap, topic, expected=len(small))
    assert sorted(dict(r.headers)["event_id"].decode() for r in on_topic) == sorted(small)


async def test_each_record_carries_the_envelope_headers_and_the_conversation_as_key(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory, kafka_bootstrap: str
) -> None:
    """Every relayed record has headers event_id, biz_type and schema_version matching its
    envelope, and its key is the conversation id."""
    topic, _ = unique_names("headers")
    await record_round_robin(uow, topic, conversation_ids(f"hdr-{topic[-6:]}", 3), 30)
    await relay_all_to(uow, kafka_bootstrap, topic)

    on_topic = await read_topic(kafka_bootstrap, topic, expected=30)
    assert len(on_topic) == 30
    for record in on_topic:
        envelope = Envelope.decode(record.value)
        assert dict(record.headers) == {
            "event_id": envelope.event_id.encode(),
            "biz_type": BIZ_TYPE_CHAT_HISTORY.encode(),
            "schema_version": str(SCHEMA_VERSION).encode(),
        }
        assert envelope.schema_version == SCHEMA_VERSION
        assert record.key == envelope.payload.conversation_id.encode()
    rows = await outbox_rows(engine)
    assert {Envelope.decode(r.value).event_id for r in on_topic} == {
        row["event_id"] for row in rows
    }


async def test_a_conversation_lands_on_one_partition_in_recording_order(
    uow: SqlUnitOfWorkFactory, kafka_bootstrap: str
) -> None:
    """All records of a conversation share one partition, where their offsets follow the
    recording order."""
    topic, _ = unique_names("partitions")
    await record_round_robin(uow, topic, conversation_ids(f"part-{topic[-6:]}", 20), 200)
    await relay_all_to(uow, kafka_bootstrap, topic)

    on_topic = await read_topic(kafka_bootstrap, topic, expected=200)
    placed: defaultdict[bytes, set[int]] = defaultdict(set)
    for record in on_topic:
        placed[record.key].add(record.partition)
    assert len(placed) == 20
    assert all(len(partitions) == 1 for partitions in placed.values()), dict(placed)
    assert len(set().union(*placed.values())) > 1
    for key in placed:
        in_log = sorted(
            (r.offset, Envelope.decode(r.value).outbox_id) for r in on_topic if r.key == key
        )
        outbox_ids = [outbox_id for _, outbox_id in in_log]
        assert outbox_ids == sorted(outbox_ids)
