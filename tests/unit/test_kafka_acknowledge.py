"""Acknowledging after a rebalance moved partitions away: the consumer commits what it
still owns and goes on, instead of crashing (the chaos run caught aiokafka's
IllegalStateError for a partition that was no longer assigned)."""

from __future__ import annotations

import attrs
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError

from adapters.kafka import KafkaOptions, KafkaSource
from application.ports import IncomingRecord

pytestmark = pytest.mark.unit

TOPIC = "chat"


@attrs.define
class RebalancedConsumer:
    """What a group consumer does after a rebalance: it owns `assigned`, and refuses to
    commit any other partition, as AIOKafkaConsumer.commit does."""

    assigned: set[TopicPartition]
    committed: list[dict[TopicPartition, int]] = attrs.field(factory=list)

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        for partition in offsets:
            if partition not in self.assigned:
                raise IllegalStateError(f"Partition {partition} is not assigned")
        self.committed.append(dict(offsets))


def source_over(consumer: RebalancedConsumer) -> KafkaSource:
    source = KafkaSource(KafkaOptions(), TOPIC, "history")
    source._consumer = consumer  # stands in for the started AIOKafkaConsumer
    return source


def fetched(partition: int, offset: int) -> IncomingRecord:
    return IncomingRecord(TOPIC, partition, offset, b"key", b"value")


async def test_offsets_of_partitions_still_owned_are_committed_and_the_rest_skipped() -> None:
    consumer = RebalancedConsumer({TopicPartition(TOPIC, 1)})
    records = [fetched(0, 7), fetched(1, 3), fetched(1, 4), fetched(2, 9)]

    await source_over(consumer).acknowledge(records)

    assert consumer.committed == [{TopicPartition(TOPIC, 1): 5}]


async def test_nothing_is_committed_when_every_partition_moved_away() -> None:
    consumer = RebalancedConsumer(set())

    await source_over(consumer).acknowledge([fetched(0, 7)])

    assert consumer.committed == []
