"""Kafka publishing as one record batch per partition, against a producer that fails whole
batches as a broker does (the local broker cannot be made to refuse one partition)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import attrs
import pytest
from aiokafka.errors import KafkaConnectionError, NotLeaderForPartitionError
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.memory_records import MemoryRecords

from chat_outbox.adapters.kafka.batches import BatchPublication
from chat_outbox.adapters.kafka.partitioner import cached_partitioner
from chat_outbox.application.ports import OutgoingRecord, PublishResult

pytestmark = pytest.mark.unit

PARTITIONS = [0, 1, 2]


@attrs.define
class BatchProducer:
    """The part of AIOKafkaProducer a publication uses. Batches are real record batches;
    `refuse(partition, round)` picks the error a sent batch fails with, if any. `sent`
    holds each sent batch's (partition, values), in send order."""

    batch_bytes: int = 16_384
    refuse: Callable[[int, int], Exception | None] = lambda partition, round_: None
    sent: list[tuple[int, list[bytes]]] = attrs.field(factory=list)
    rounds: dict[int, int] = attrs.field(factory=dict)

    async def partitions_for(self, topic: str) -> set[int]:
        return set(PARTITIONS)

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(self.batch_bytes, 0)

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int) -> Any:
        records = MemoryRecords(bytes(batch._build())).next_batch()
        self.sent.append((partition, [record.value for record in records]))
        self.rounds[partition] = self.rounds.get(partition, 0) + 1
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        error = self.refuse(partition, self.rounds[partition])
        future.set_result(None) if error is None else future.set_exception(error)
        return future


def partition_of(key: str) -> int:
    return cached_partitioner(key.encode(), PARTITIONS, PARTITIONS)


def keys_on_distinct_partitions() -> tuple[str, str]:
    by_partition = {partition_of(f"conv-{n}"): f"conv-{n}" for n in range(50)}
    return by_partition[0], by_partition[1]


def outcome(result: PublishResult) -> str:
    """'sent', or the failure's error name ('not sent' when it was never sent)."""
    return "sent" if result is None else result.reason.split(":")[0]


def records(*keyed: tuple[str, str], padding: int = 0) -> list[OutgoingRecord]:
    return [OutgoingRecord("chat", key, (text + " " * padding).encode()) for key, text in keyed]


async def test_a_partitions_records_of_one_call_travel_as_one_batch() -> None:
    a, b = keys_on_distinct_partitions()
    producer = BatchProducer()
    batch = records((a, "a1"), (b, "b1"), (a, "a2"), (b, "b2"), (a, "a3"))

    results = await BatchPublication(producer, batch, 1_000_000).run()

    assert results == [None] * 5
    assert sorted(producer.sent) == [(0, [b"a1", b"a2", b"a3"]), (1, [b"b1", b"b2"])]


async def test_a_refused_batch_fails_its_records_and_its_keys_later_records_are_not_sent() -> None:
    """Partition 0's records overflow one batch. Its first batch is refused: those records
    fail with the broker's error, the same key's records of the next batch are not sent,
    and the other partition's records are delivered."""
    a, b = keys_on_distinct_partitions()
    producer = BatchProducer(
        batch_bytes=300,
        refuse=lambda partition, round_: NotLeaderForPartitionError() if partition == 0 else None,
    )
    batch = records(*[(a, f"a{n}") for n in range(4)], (b, "b0"), padding=100)

    results = await BatchPublication(producer, batch, 1_000_000).run()

    first_batch = len(producer.sent[0][1])
    assert 0 < first_batch < 4
    refused = ["NotLeaderForPartitionError"] * first_batch
    assert [outcome(r) for r in results] == [*refused, *["not sent"] * (4 - first_batch), "sent"]
    assert {(r.retryable, r.counted) for r in results[:first_batch] if r} == {(True, True)}
    assert [partition for partition, _ in producer.sent] == [0, 1]


async def test_an_unreachable_cluster_ends_the_call_after_one_round() -> None:
    """Every batch fails with a connection error. Partition 0's overflow holds another
    key's record, which is not sent in a second round; every record reports an uncounted
    failure."""
    a, c = [f"conv-{n}" for n in range(50) if partition_of(f"conv-{n}") == 0][:2]
    _, b = keys_on_distinct_partitions()
    producer = BatchProducer(batch_bytes=300, refuse=lambda *_: KafkaConnectionError())
    keyed = [(a, f"a{n}") for n in range(4)] + [(b, "b0"), (c, "c0")]

    results = await BatchPublication(producer, records(*keyed, padding=100), 1_000_000).run()

    assert [partition for partition, _ in producer.sent] == [0, 1]
    assert all(result is not None and not result.counted for result in results)
    assert outcome(results[-1]) == "not sent"


async def test_a_record_over_the_limit_fails_for_good_and_holds_its_keys_later_records() -> None:
    a, b = keys_on_distinct_partitions()
    producer = BatchProducer()
    batch = records((a, "a0"), (a, "x" * 500), (a, "a2"), (b, "b0"))

    results = await BatchPublication(producer, batch, 400).run()

    assert [outcome(r) for r in results] == ["sent", "MessageSizeTooLargeError", "not sent", "sent"]
    assert results[1] is not None
    assert not results[1].retryable
    assert sorted(producer.sent) == [(0, [b"a0"]), (1, [b"b0"])]
