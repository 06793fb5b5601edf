"""Records of a conversation land where Kafka's default partitioner would put them."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner

from chat_outbox.adapters.kafka.partitioner import cached_partitioner

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("partitions", [1, 6, 7, 64])
def test_the_cached_partitioner_agrees_with_kafkas_default(partitions: int) -> None:
    """Same key, same partition as aiokafka's (and the Java client's) murmur2 partitioner,
    so other producers and consumers agree on where a conversation lives."""
    all_partitions = list(range(partitions))
    for n in range(500):
        key = f"conversation-{n}-é".encode()
        expected = DefaultPartitioner()(key, all_partitions, all_partitions)
        assert cached_partitioner(key, all_partitions, all_partitions) == expected
