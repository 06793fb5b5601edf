"""A record too big for the dead-letter topic is parked truncated, never retried for ever."""

from __future__ import annotations

import pytest

from chat_outbox.adapters.kafka import KafkaSource, dlq_topic, ensure_topics
from chat_outbox.application.ports import IncomingRecord
from tests.integration.conftest import fast_kafka_options
from tests.integration.kafka_helpers import read_topic, unique_names

pytestmark = pytest.mark.integration


async def test_an_oversized_record_is_dead_lettered_as_its_head_with_reason_and_size(
    kafka_bootstrap: str,
) -> None:
    """A 3 MB record (over the producer's 1 MB request limit) reaches the DLQ as its first
    64 KiB, with its reason, source and original size in headers (it used to wedge the
    consumer: the DLQ produce failed as 'bus unavailable' and was retried for ever)."""
    topic, group = unique_names("dlqsize")
    options = fast_kafka_options(kafka_bootstrap)
    await ensure_topics(options, topic)
    source = KafkaSource(options, topic, group)
    huge = IncomingRecord(topic, 0, 41, b"conv", b"z" * 3_000_000, (("case", b"huge"),))
    try:
        await source.dead_letter(huge, "message is 3000000 bytes, over the limit")
    finally:
        await source.close()

    [parked] = await read_topic(kafka_bootstrap, dlq_topic(topic), expected=1)
    headers = dict(parked.headers)
    assert parked.value == b"z" * 65536
    assert parked.key == b"conv"
    assert headers["dlq_reason"] == b"message is 3000000 bytes, over the limit"
    assert headers["dlq_source"] == f"{topic}/0/41".encode()
    assert headers["dlq_truncated_from"] == b"value=3000000 key=4"
    assert headers["case"] == b"huge"
