"""Handle delivered records: idempotent chat-history write and mark consumed, atomically."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

import attrs
import structlog

from application.errors import StoreUnavailable
from application.ports import Clock, IncomingRecord, MessageSource, UnitOfWorkFactory
from domain import (
    DEFAULT_MAX_MESSAGE_BYTES,
    Envelope,
    HistoryEntry,
    MalformedEnvelope,
    RetryPolicy,
    consumed,
)

log = structlog.get_logger(__name__)

Sleep = Callable[[float], Awaitable[None]]


@attrs.frozen
class ConsumeReport:
    received: int = 0
    persisted: int = 0
    duplicates: int = 0
    dead_lettered: int = 0


@attrs.frozen
class HistoryWriter:
    uow: UnitOfWorkFactory
    clock: Clock

    async def persist(self, envelopes: Sequence[Envelope]) -> tuple[int, int]:
        """One transaction: insert new history rows, mark their outbox rows consumed.
        Returns (inserted, outbox rows moved to consumed)."""
        unique = list({envelope.event_id: envelope for envelope in envelopes}.values())
        now = self.clock.now()
        async with self.uow() as uow:
            inserted = await uow.history.add_many([HistoryEntry.from_envelope(e) for e in unique])
            moved = await uow.outbox.apply([consumed(e.outbox_id, now) for e in unique])
            await uow.commit()
        return inserted, moved


@attrs.frozen
class Consumer:
    """Fetch a batch, dead-letter what cannot be decoded, persist the rest, then ack."""

    source: MessageSource
    writer: HistoryWriter
    policy: RetryPolicy = attrs.field(factory=RetryPolicy)
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    batch_size: int = 500
    sleep: Sleep = asyncio.sleep
    stopping: asyncio.Event = attrs.field(factory=asyncio.Event)

    async def consume_batch(self, timeout: float = 1.0) -> ConsumeReport:
        records = await self.source.fetch(self.batch_size, timeout)
        if not records:
            return ConsumeReport()
        envelopes = await self._decode_or_dead_letter(records)
        inserted = await self._persist_until_done(envelopes)
        await self.source.acknowledge(records)
        return ConsumeReport(
            received=len(records),
            persisted=inserted,
            duplicates=len(envelopes) - inserted,
            dead_lettered=len(records) - len(envelopes),
        )

    async def _decode_or_dead_letter(self, records: Sequence[IncomingRecord]) -> list[Envelope]:
        envelopes: list[Envelope] = []
        for record in records:
            try:
                envelopes.append(Envelope.decode(record.value or b"", self.max_message_bytes))
            except MalformedEnvelope as error:
                log.error(
                    "record_dead_lettered",
                    reason=str(error),
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                )
                await self.source.dead_letter(record, str(error))
        return envelopes

    async def _persist_until_done(self, envelopes: list[Envelope]) -> int:
        """A transient database error is retried; the batch is neither skipped nor acked."""
        attempt = 0
        while True:
            try:
                inserted, _ = await self.writer.persist(envelopes)
                return inserted
            except StoreUnavailable as error:
                attempt += 1
                if self.stopping.is_set():
                    raise
                delay = self.policy.backoff(attempt).total_seconds()
                log.warning(
                    "persist_failed_retrying",
                    error=str(error),
                    attempt=attempt,
                    retry_in_s=round(delay, 3),
                    batch=len(envelopes),
                )
                await self.sleep(delay)


async def run_consumer(
    consumer: Consumer, *, idle_exit: float | None = None, poll_timeout: float = 1.0
) -> ConsumeReport:
    """Consume until `consumer.stopping` is set, or until idle for `idle_exit` seconds."""
    totals = ConsumeReport()
    idle_since: float | None = None  # starts at the first empty fetch, not during the join
    while not consumer.stopping.is_set():
        started = time.perf_counter()
        report = await consumer.consume_batch(poll_timeout)
        if report.received:
            idle_since = None
            totals = ConsumeReport(
                *(x + y for x, y in zip(attrs.astuple(totals), attrs.astuple(report), strict=True))
            )
            log.info(
                "consume_batch",
                **attrs.asdict(report),
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )
            continue
        now = time.monotonic()
        idle_since = now if idle_since is None else idle_since
        if idle_exit is not None and now - idle_since >= idle_exit:
            log.info("consumer_idle_exit", idle_s=idle_exit)
            break
    return totals
