"""Acknowledging: offsets are committed at most every commit interval, and at once when the
consumer goes idle, loses partitions or stops; after a rebalance moved partitions away, the
consumer commits what it still owns and goes on, instead of crashing (the chaos run caught
aiokafka's IllegalStateError for a partition that was no longer assigned)."""

from __future__ import annotations

import asyncio
from typing import Any

import attrs
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError, KafkaTimeoutError

from chat_outbox.adapters.kafka import KafkaOptions, KafkaSource
from chat_outbox.adapters.kafka.offsets import PendingOffsets
from chat_outbox.adapters.kafka.source import _CommitBeforeRevoke
from chat_outbox.application.ports import IncomingRecord

pytestmark = pytest.mark.unit

TOPIC = "chat"


@attrs.define
class RebalancedConsumer:
    """What a group consumer does after a rebalance: it owns `assigned`, and refuses to
    commit any other partition, as AIOKafkaConsumer.commit does."""

    assigned: set[TopicPartition]
    committed: list[dict[TopicPartition, int]] = attrs.field(factory=list)
    stopped: bool = False
    refuse: KafkaError | None = None
    hold: asyncio.Event | None = None
    """While set and not yet released, a commit waits (a slow coordinator)."""
    journal: list[str] = attrs.field(factory=list)

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        return {}  # nothing new: the consumer is idle

    def highwater(self, partition: TopicPartition) -> int | None:
        return None  # not fetched from yet: no lag to report

    async def stop(self) -> None:
        self.stopped = True

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        for partition in offsets:
            if partition not in self.assigned:
                raise IllegalStateError(f"Partition {partition} is not assigned")
        if self.refuse is not None:
            raise self.refuse
        self.journal.append("sent")
        if self.hold is not None:
            await self.hold.wait()
        self.journal.append("answered")
        self.committed.append(dict(offsets))


@attrs.define
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def source_over(consumer: RebalancedConsumer, clock: Clock | None = None) -> KafkaSource:
    options = KafkaOptions(commit_interval_ms=250, request_timeout_ms=100)
    source = KafkaSource(options, TOPIC, "history")
    source._consumer = consumer  # stands in for the started AIOKafkaConsumer
    source._pending = PendingOffsets(0.25, clock or Clock())  # binary fractions: exact sums
    return source


def every_partition(*numbers: int) -> set[TopicPartition]:
    return {TopicPartition(TOPIC, number) for number in numbers}


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


async def test_acknowledgements_within_the_interval_are_committed_together_when_it_is_up() -> None:
    consumer, clock = RebalancedConsumer(every_partition(0, 1)), Clock()
    source = source_over(consumer, clock)

    await source.acknowledge([fetched(0, 1)])  # the first commit goes at once
    clock.now += 0.125
    await source.acknowledge([fetched(0, 2), fetched(1, 5)])
    clock.now += 0.0625
    await source.acknowledge([fetched(0, 3)])
    committed_within = list(consumer.committed)
    clock.now += 0.0625
    await source.acknowledge([fetched(1, 6)])

    partition_0, partition_1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)
    assert committed_within == [{partition_0: 2}]
    assert consumer.committed == [{partition_0: 2}, {partition_0: 4, partition_1: 7}]


async def test_an_idle_fetch_commits_what_was_acknowledged() -> None:
    consumer, clock = RebalancedConsumer(every_partition(0)), Clock()
    source = source_over(consumer, clock)
    await source.acknowledge([fetched(0, 1)])
    await source.acknowledge([fetched(0, 2)])  # within the interval: waits

    assert await source.fetch(10, 0.01) == []

    assert consumer.committed == [{TopicPartition(TOPIC, 0): 2}, {TopicPartition(TOPIC, 0): 3}]


async def test_closing_commits_what_was_acknowledged() -> None:
    consumer = RebalancedConsumer(every_partition(0))
    source = source_over(consumer)
    await source.acknowledge([fetched(0, 1)])
    await source.acknowledge([fetched(0, 2)])

    await source.close()

    assert consumer.committed[-1] == {TopicPartition(TOPIC, 0): 3}
    assert consumer.stopped


async def test_a_rebalance_commits_the_revoked_partitions_before_they_move() -> None:
    consumer = RebalancedConsumer(every_partition(0, 1))
    source = source_over(consumer)
    await source.acknowledge([fetched(0, 1)])
    await source.acknowledge([fetched(0, 2), fetched(1, 8)])

    await _CommitBeforeRevoke(source).on_partitions_revoked(every_partition(1))

    assert consumer.committed[-1] == {TopicPartition(TOPIC, 1): 9}
    consumer.committed.clear()
    await source.close()
    assert consumer.committed == [{TopicPartition(TOPIC, 0): 3}]


async def test_offsets_a_retriable_failure_refused_go_with_the_next_commit() -> None:
    consumer, clock = RebalancedConsumer(every_partition(0)), Clock()
    source = source_over(consumer, clock)
    consumer.refuse = KafkaTimeoutError()
    await source.acknowledge([fetched(0, 1)])
    consumer.refuse = None
    clock.now += 0.25

    assert await source.fetch(10, 0.01) == []  # idle: commits what is pending

    assert consumer.committed == [{TopicPartition(TOPIC, 0): 2}]


async def test_one_commit_at_a_time_so_a_slow_one_cannot_land_after_a_newer_one() -> None:
    consumer, clock = RebalancedConsumer(every_partition(0)), Clock()
    consumer.hold = asyncio.Event()
    source = source_over(consumer, clock)
    first = asyncio.create_task(source.acknowledge([fetched(0, 1)]))
    await asyncio.sleep(0.01)
    clock.now += 0.25
    second = asyncio.create_task(source.acknowledge([fetched(0, 2)]))
    await asyncio.sleep(0.01)

    assert consumer.journal == ["sent"]  # the second waits for the first's answer
    consumer.hold.set()
    await asyncio.gather(first, second)
    assert consumer.journal == ["sent", "answered", "sent", "answered"]
    assert consumer.committed == [{TopicPartition(TOPIC, 0): 2}, {TopicPartition(TOPIC, 0): 3}]


async def test_closing_while_the_coordinator_hangs_gives_up_after_the_request_timeout() -> None:
    consumer = RebalancedConsumer(every_partition(0))
    consumer.hold = asyncio.Event()  # never released
    source = source_over(consumer)
    source._pending.add({TopicPartition(TOPIC, 0): 5})

    await asyncio.wait_for(source.close(), 5)

    assert consumer.stopped
    assert consumer.committed == []
