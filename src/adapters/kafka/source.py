"""The consumer's side of Kafka: batches in, offsets committed only once acknowledged (and
then lazily: see offsets.py), a DLQ topic."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from chat_outbox.adapters.kafka.errors import FATAL_ERRORS
from chat_outbox.adapters.kafka.offsets import PendingOffsets
from chat_outbox.adapters.kafka.options import KafkaOptions, started
from chat_outbox.adapters.kafka.topics import dlq_topic, ensure_topics
from chat_outbox.application.errors import BusUnavailable
from chat_outbox.application.metrics import Metrics, NoMetrics
from chat_outbox.application.ports import IncomingRecord, MessageSource

log = structlog.get_logger(__name__)


class KafkaSource(MessageSource):
    """Subscribes lazily and waits out a broker that is down instead of crashing."""

    def __init__(
        self,
        options: KafkaOptions,
        topic: str,
        group_id: str,
        provision: bool = False,
        metrics: Metrics | None = None,
        also: Sequence[str] = (),
    ) -> None:
        """Reads `topic`, and the topics `also` names (event types with topics of their own)."""
        self._options = options
        self._metrics = metrics or NoMetrics()
        self._provision = provision
        self._topics = tuple(dict.fromkeys((topic, *also)))
        self._group_id = group_id
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._pending = PendingOffsets(options.commit_interval_ms / 1000)
        self._commit_lock = asyncio.Lock()

    async def fetch(self, max_records: int, timeout: float) -> list[IncomingRecord]:
        try:
            consumer = await self._started()
        except KafkaError as error:
            log.warning(
                "kafka_consumer_unavailable",
                error=f"{type(error).__name__}: {error}",
                retry_in_s=timeout,
            )
            await asyncio.sleep(timeout)
            return []
        try:
            batches = await consumer.getmany(
                timeout_ms=int(timeout * 1000), max_records=max_records
            )
        except KafkaError as error:
            log.warning("kafka_fetch_failed", error=f"{type(error).__name__}: {error}")
            await asyncio.sleep(timeout)
            return []
        await self._report_lag(consumer)
        if not batches and self._pending:
            await self._commit()  # idle: nothing will be acknowledged soon
        return [
            IncomingRecord(
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                key=message.key,
                value=message.value,
                headers=headers_of(message.headers),
                timestamp=_timestamp(message.timestamp),
            )
            for partition in sorted(batches, key=lambda tp: tp.partition)
            for message in batches[partition]
        ]

    async def _report_lag(self, consumer: AIOKafkaConsumer) -> None:
        """Lag from the high-water marks the fetch responses carried, against our position:
        no extra request (end_offsets would cost one, and is wrong on some brokers)."""
        for partition in consumer.assignment():
            try:
                highwater = consumer.highwater(partition)
                if highwater is None:
                    continue  # not fetched from yet
                position = await consumer.position(partition)
            except (KafkaError, AssertionError):
                continue  # unassigned by a rebalance meanwhile
            self._metrics.consumer_lag(partition.topic, partition.partition, highwater - position)

    async def acknowledge(self, records: Sequence[IncomingRecord]) -> None:
        if not records or self._consumer is None:
            return
        offsets: dict[TopicPartition, int] = {}
        for record in records:
            partition = TopicPartition(record.topic, record.partition)
            offsets[partition] = max(offsets.get(partition, 0), record.offset + 1)
        self._pending.add(offsets)
        if self._pending.due:
            await self._commit()

    async def commit_now(self, partitions: Collection[TopicPartition] | None = None) -> None:
        """Commit what was acknowledged (of `partitions`, or all) now, for a rebalance or a
        stop. Bounded: a commit retries until the group coordinator answers, and with the
        cluster gone that would hold up the rebalance or the stop."""
        try:
            async with asyncio.timeout(self._options.request_timeout_ms / 1000):
                await self._commit(partitions)
        except TimeoutError:  # delivered again to whoever reads them next: harmless
            log.warning("offset_commit_failed", error="timed out")

    async def _commit(self, partitions: Collection[TopicPartition] | None = None) -> None:
        """Commit the pending offsets (of `partitions`, or all). One commit at a time, so a
        slow one cannot land after a newer one and move the group's offsets back. A failed
        commit costs a redelivery, never a record (unless a rebalance moved them, its
        offsets go back to pending)."""
        async with self._commit_lock:
            offsets = self._pending.take(partitions)
            if self._consumer is None or not offsets:
                return
            # A rebalance may have moved partitions away since the fetch: their new owner
            # gets these records again, and the idempotent history insert makes that harmless.
            assigned = self._consumer.assignment()
            kept = {p: offset for p, offset in offsets.items() if p in assigned}
            if len(kept) < len(offsets):
                log.warning("offset_commit_skipped_unassigned", partitions=len(offsets) - len(kept))
            if not kept:
                return
            try:
                await self._consumer.commit(kept)
            except KafkaError as error:
                if not isinstance(error, CommitFailedError | IllegalStateError):
                    self._pending.add(kept)  # not moved away by a rebalance: try again
                log.warning(
                    "offset_commit_failed",
                    error=f"{type(error).__name__}: {error}",
                    partitions=len(kept),
                )

    async def dead_letter(self, record: IncomingRecord, reason: str) -> None:
        headers = [
            *record.headers,
            ("dlq_reason", reason.encode("utf-8", "replace")[:1000]),
            ("dlq_source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
        ]
        try:
            producer = await self._dlq_producer()
            try:
                await producer.send_and_wait(
                    dlq_topic(record.topic), value=record.value, key=record.key, headers=headers
                )
            except FATAL_ERRORS as error:
                # Too big for the DLQ (a 10 MB record): retrying the same bytes can never
                # work and would wedge the partition, so park its head and its reason.
                log.warning("dead_letter_truncated", error=f"{type(error).__name__}: {error}")
                await producer.send_and_wait(dlq_topic(record.topic), **_truncated(record, headers))
        except KafkaError as error:
            reason = f"dead-letter produce failed: {type(error).__name__}: {error}"
            raise BusUnavailable(reason) from error

    async def close(self) -> None:
        await self.commit_now()
        for client in (self._consumer, self._producer):
            if client is not None:
                await client.stop()
        self._consumer = self._producer = None

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            if self._provision:
                for topic in self._topics:
                    await ensure_topics(self._options, topic)
            consumer = AIOKafkaConsumer(**self._options.consumer(self._group_id))
            consumer.subscribe(list(self._topics), listener=_CommitBeforeRevoke(self))
            self._consumer = await started(consumer)
            log.info("kafka_consumer_started", topic=",".join(self._topics), group=self._group_id)
        return self._consumer

    async def _dlq_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            self._producer = await started(AIOKafkaProducer(**self._options.producer()))
        return self._producer


class _CommitBeforeRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits what was acknowledged of the partitions a rebalance takes away, so their
    next owner does not get those records again (batches still being written when the
    rebalance comes are acknowledged too late for it, and come again)."""

    def __init__(self, source: KafkaSource) -> None:
        self._source = source

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._source.commit_now(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        pass


def headers_of(raw: Sequence[tuple[str, bytes | None]]) -> tuple[tuple[str, bytes], ...]:
    """Kafka allows a null header value (a foreign producer may send one): it reads as
    empty, rather than failing the whole batch on every redelivery."""
    headers = tuple(raw)
    for _, value in headers:
        if type(value) is not bytes:
            return tuple((name, bytes(value or b"")) for name, value in headers)
    return headers  # type: ignore[return-value]  # every value is bytes


def _timestamp(milliseconds: int | None) -> datetime | None:
    return (
        None
        if milliseconds is None or milliseconds < 0
        else datetime.fromtimestamp(milliseconds / 1000, UTC)
    )


TRUNCATED_BYTES = 64 * 1024


def _truncated(record: IncomingRecord, headers: list[tuple[str, bytes]]) -> dict[str, Any]:
    """The record cut to what any broker accepts: the first 64 KiB of key and value, the
    original headers only if they are small, and the original sizes in a header."""
    value, key = record.value or b"", record.key or b""
    if sum(len(name) + len(data) for name, data in headers) > TRUNCATED_BYTES:
        headers = [(name, data) for name, data in headers if name.startswith("dlq_")]
    sizes = f"value={len(value)} key={len(key)}".encode()
    return {
        "value": value[:TRUNCATED_BYTES],
        "key": None if record.key is None else key[:TRUNCATED_BYTES],
        "headers": [*headers, ("dlq_truncated_from", sizes)],
    }
