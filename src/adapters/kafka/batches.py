"""Publish records as one record batch per partition. Kafka stores a record batch whole or
not at all, so a failed batch leaves no gap in any key's order; and a batch costs one
future and one produce entry, where `send` costs a future and a partitioner call a record."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from chat_outbox.adapters.kafka.errors import classify
from chat_outbox.adapters.kafka.partitioner import cached_partitioner
from chat_outbox.application.ports import OutgoingRecord, PublishResult
from chat_outbox.domain import PublishFailure

Partition = tuple[str, int]


class BatchPublication:
    """One publish call. Each round sends the next batch of every partition at once; a
    partition needs a second round only when its records overflow `max_bytes`. A failed
    record stops its key: the key's later records are not sent. A failure that says the
    cluster is unreachable ends the call, so it waits out one timeout, not one a batch."""

    def __init__(
        self, producer: AIOKafkaProducer, records: Sequence[OutgoingRecord], max_bytes: int
    ) -> None:
        self._producer = producer
        self._records = records
        self._keys = [record.key.encode() for record in records]
        self._max_bytes = max_bytes
        self._results: dict[int, PublishResult] = {}
        self._stopped: dict[tuple[str, str], PublishFailure] = {}
        self._outage: PublishFailure | None = None

    async def run(self) -> list[PublishResult]:
        queues = await self._queues()
        while queues and self._outage is None:
            filled = [(partition, *self._fill(queue)) for partition, queue in queues]
            flights = [
                (await self._send(partition, batch), taken)
                for partition, batch, taken, _ in filled
                if taken
            ]
            for flight, taken in flights:
                await self._settle(flight, taken)
            queues = [(partition, rest) for partition, _, _, rest in filled if rest]
        return [self._result(index) for index in range(len(self._records))]

    async def _queues(self) -> list[tuple[Partition, list[int]]]:
        """Each partition's record indices, in call order."""
        queues: dict[Partition, list[int]] = {}
        partitions: dict[str, list[int] | PublishFailure] = {}
        for index, record in enumerate(self._records):
            if record.topic not in partitions:
                partitions[record.topic] = await self._partitions(record.topic)
            known = partitions[record.topic]
            if isinstance(known, PublishFailure):
                self._results[index] = known
                continue
            partition = cached_partitioner(self._keys[index], known, known)
            queues.setdefault((record.topic, partition), []).append(index)
        return list(queues.items())

    async def _partitions(self, topic: str) -> list[int] | PublishFailure:
        try:
            return sorted(await self._producer.partitions_for(topic))
        except KafkaError as error:
            return classify(error)

    def _fill(self, queue: list[int]) -> tuple[Any, list[int], list[int]]:
        """A batch of the queue's first records that fit: (batch, taken, rest). Records of
        a stopped key are not sent; one over the size limit fails for good on its own."""
        batch = self._producer.create_batch()
        taken: list[int] = []
        for position, index in enumerate(queue):
            record = self._records[index]
            stopped_by = self._stopped.get((record.topic, record.key))
            if stopped_by is not None:
                reason = f"not sent: an earlier record of its key failed: {stopped_by.reason}"
                self._results[index] = PublishFailure.unavailable(reason)
                continue
            key, headers = self._keys[index], list(record.headers)  # the C builder wants lists
            size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, record.value, headers)
            if size > self._max_bytes:
                error = MessageSizeTooLargeError(
                    f"The message is {size} bytes when serialized, over max_request_size "
                    f"({self._max_bytes})"
                )
                self._fail([index], classify(error))
                continue
            if batch.append(timestamp=None, key=key, value=record.value, headers=headers) is None:
                return batch, taken, queue[position:]
            taken.append(index)
        return batch, taken, []

    async def _send(self, partition: Partition, batch: Any) -> asyncio.Future[Any] | PublishFailure:
        topic, number = partition
        try:
            future: asyncio.Future[Any] = await self._producer.send_batch(
                batch, topic, partition=number
            )
        except KafkaError as error:
            return classify(error)
        return future

    async def _settle(self, flight: asyncio.Future[Any] | PublishFailure, taken: list[int]) -> None:
        if isinstance(flight, PublishFailure):
            self._fail(taken, flight)
            return
        try:
            await flight
        except Exception as error:  # noqa: BLE001 - the batch's failure is each record's outcome
            # (a cancellation is no Exception: it propagates)
            self._fail(taken, classify(error))
            return
        for index in taken:
            self._results[index] = None

    def _fail(self, indices: list[int], failure: PublishFailure) -> None:
        for index in indices:
            record = self._records[index]
            self._results[index] = failure
            self._stopped.setdefault((record.topic, record.key), failure)
        if not failure.counted:
            self._outage = failure

    def _result(self, index: int) -> PublishResult:
        if index in self._results:
            return self._results[index]
        assert self._outage is not None, "every record is sent unless the cluster went away"
        return PublishFailure.unavailable(f"not sent: {self._outage.reason}")
