"""Handle delivered records: idempotent chat-history write and mark consumed, atomically."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import TypeVar

import attrs
import structlog

from chat_outbox.application.consume.handling import EventHandling, Events, Mixed, runs_by_kind
from chat_outbox.application.consume.retrying import Patience, Sleep
from chat_outbox.application.errors import BusUnavailable, StoreUnavailable
from chat_outbox.application.metrics import Metrics, NoMetrics
from chat_outbox.application.ports import (
    Clock,
    HistoryWriter,
    IncomingRecord,
    MessageSource,
    Persisted,
)
from chat_outbox.application.ports.codec import EnvelopeCodec
from chat_outbox.application.ports.handlers import EventHandlers, NoEventHandlers, Outcome
from chat_outbox.application.tracing import (
    TRACEPARENT_HEADER,
    LogContextOnly,
    Tracing,
    valid_traceparent,
)
from chat_outbox.domain import (
    DEFAULT_MAX_MESSAGE_BYTES,
    Envelope,
    HistoryEntry,
    MalformedEnvelope,
    RetryPolicy,
)
from chat_outbox.domain.envelope import AnyEnvelope, EventEnvelope, PlainEnvelopeCodec

log = structlog.get_logger(__name__)

T = TypeVar("T")
Decoded = list[tuple[IncomingRecord, Envelope]]
"""Chat records, for the history writer."""


@attrs.frozen
class ConsumeReport:
    received: int = 0
    persisted: int = 0
    duplicates: int = 0
    dead_lettered: int = 0


@attrs.frozen
class Received:
    """A fetched and decoded batch, not yet persisted or acknowledged."""

    records: Sequence[IncomingRecord]
    decoded: Mixed
    fetch_ms: float
    decode_ms: float


@attrs.frozen
class Written:
    """A persisted batch, not yet acknowledged."""

    inserted: int
    persisted: Mixed
    """The records written (or found already written), without the dead-lettered ones."""
    persist_ms: float


@attrs.frozen
class Consumer:
    """Fetch a batch, dead-letter what cannot be decoded, persist the rest, then ack."""

    source: MessageSource
    writer: HistoryWriter
    clock: Clock
    policy: RetryPolicy = attrs.field(factory=RetryPolicy)
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    batch_size: int = 500
    sleep: Sleep = asyncio.sleep
    stopping: asyncio.Event = attrs.field(factory=asyncio.Event)
    metrics: Metrics = attrs.field(factory=NoMetrics)
    tracing: Tracing = attrs.field(factory=LogContextOnly)
    writes: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    """Batches written at once, each in its own transaction (consumer_loop.run_consumer)."""
    codec: EnvelopeCodec = attrs.field(factory=PlainEnvelopeCodec)
    handlers: EventHandlers = attrs.field(factory=NoEventHandlers)
    """Other event types' handlers; a record of a type without one is dead-lettered."""
    handler_attempts: int = attrs.field(default=5, validator=attrs.validators.ge(1))
    """Tries of a handler that keeps raising before its event is dead-lettered."""

    async def consume_batch(self, timeout: float = 1.0) -> ConsumeReport:
        """Handle one fetched batch and log its canonical line (one per batch)."""
        received = await self.receive(timeout)
        if received is None:
            return ConsumeReport()
        return await self.finish(received, await self.write(received))

    async def receive(self, timeout: float = 1.0) -> Received | None:
        """Fetch a batch and decode it, dead-lettering what cannot be decoded; None when
        nothing came within `timeout`. Nothing is acknowledged until `finish`."""
        started = time.perf_counter()
        records = await self.source.fetch(self.batch_size, timeout)
        if not records:
            return None
        fetched = time.perf_counter()
        decoded = await self._decode_or_dead_letter(records)
        return Received(records, decoded, _ms(started, fetched), _ms(fetched))

    async def write(self, received: Received) -> Written:
        """Persist a received batch in one transaction (records the database refuses for
        good are dead-lettered). Several batches may be written at once; `finish` must
        then be called in the order they were received."""
        started = time.perf_counter()
        inserted, persisted = await self._persist(received.decoded)
        return Written(inserted, persisted, _ms(started))

    async def finish(self, received: Received, written: Written) -> ConsumeReport:
        """Acknowledge a written batch, observe it, and log its canonical line."""
        started = time.perf_counter()
        await self.source.acknowledge(received.records)
        ack_ms = _ms(started)
        self._observe(written.persisted)
        valid = len(written.persisted)
        report = ConsumeReport(
            received=len(received.records),
            persisted=written.inserted,
            duplicates=valid - written.inserted,
            dead_lettered=len(received.records) - valid,
        )
        log.info(
            "consume_batch",
            **attrs.asdict(report),
            fetch_ms=received.fetch_ms,
            decode_ms=received.decode_ms,
            persist_ms=written.persist_ms,
            ack_ms=ack_ms,
        )
        return report

    async def _decode_or_dead_letter(self, records: Sequence[IncomingRecord]) -> Mixed:
        decoded: Mixed = []
        first_seen: dict[str, HistoryEntry] = {}
        for record in records:
            try:
                envelope = self.codec.decode(record.value or b"", self.max_message_bytes)
                _check_key(record, envelope)
            except Exception as error:  # noqa: BLE001 - whatever the failure, the record is malformed
                # Restored for the dead letter's log lines only: a context per record
                # would cost the hot path more than the decode.
                with self.tracing.restored(_traceparent(record)):
                    await self._dead_letter(record, _malformed(error))
                continue
            if isinstance(envelope, EventEnvelope):
                with self.tracing.restored(_traceparent(record)):
                    if await self._events().refuse_unknown(record, envelope):
                        continue
                decoded.append((record, envelope))
                continue
            entry = HistoryEntry.from_envelope(envelope)
            if first_seen.setdefault(envelope.event_id, entry) != entry:
                reason = _conflict(envelope.event_id, "earlier in the batch")
                with self.tracing.restored(_traceparent(record)):
                    await self._dead_letter(record, reason)
                continue
            decoded.append((record, envelope))
        return decoded

    async def _persist(self, decoded: Mixed) -> tuple[int, Mixed]:
        """Persist the batch in bus order: runs of chat records through the history writer,
        other events one by one through their handlers. Returns (written, the records kept)."""
        runs = runs_by_kind(decoded)
        if len(runs) == 1 and not runs[0][1]:
            return await self._persist_chat(runs[0][0])  # type: ignore[arg-type]
        inserted = 0
        kept: Mixed = []
        for run, events in runs:
            if events:
                done, written = await self._handle_events(run)  # type: ignore[arg-type]
            else:
                done, written = await self._persist_chat(run)  # type: ignore[arg-type]
            inserted += done
            kept += written
        return inserted, kept

    async def _handle_events(self, events: Events) -> tuple[int, Mixed]:
        """Hand each event to its handler, in bus order."""
        handling = self._events()
        handled = 0
        kept: Mixed = []
        for record, envelope in events:
            with self.tracing.restored(_traceparent(record)):
                outcome = await handling.handle(record, envelope)
            if outcome is None:
                continue
            handled += outcome is Outcome.HANDLED
            kept.append((record, envelope))
        return handled, kept

    async def _persist_chat(self, decoded: Decoded) -> tuple[int, Mixed]:
        """Persist chat records; if the database refuses it for good (not a transient error),
        persist record by record so only the record at fault is dead-lettered, instead of
        the whole partition wedging on it. Returns (inserted, the records persisted)."""
        envelopes = [envelope for _, envelope in decoded]
        try:
            outcome = await self._until_done("persist", lambda: self._write(envelopes))
            return outcome.inserted, list(await self._without_conflicts(decoded, outcome))
        except (StoreUnavailable, BusUnavailable):
            raise
        except Exception as error:  # noqa: BLE001 - isolated below, then dead-lettered
            log.error("batch_refused_persisting_one_by_one", error=describe(error))
        inserted = 0
        persisted: Mixed = []
        for record, envelope in decoded:
            try:
                one = await self._until_done("persist", partial(self._write, [envelope]))
            except (StoreUnavailable, BusUnavailable):
                raise
            except Exception as error:  # noqa: BLE001 - parked in the DLQ with the reason
                with self.tracing.restored(_traceparent(record)):
                    await self._dead_letter(record, f"cannot persist: {describe(error)}")
                continue
            inserted += one.inserted
            persisted += await self._without_conflicts([(record, envelope)], one)
        return inserted, persisted

    async def _write(self, envelopes: Sequence[Envelope]) -> Persisted:
        """One attempt, its rows consumed at the attempt's time."""
        return await self.writer.persist(envelopes, self.clock.now())

    async def _without_conflicts(self, decoded: Decoded, outcome: Persisted) -> Decoded:
        """The records persisted; those whose event id history holds with other content,
        and those their outbox row does not vouch for, are dead-lettered instead."""
        kept: Decoded = []
        for record, envelope in decoded:
            if envelope.event_id in outcome.conflicting:
                reason = _conflict(envelope.event_id, "in chat history")
            elif envelope.event_id in outcome.forged:
                reason = outcome.forged[envelope.event_id]
            else:
                kept.append((record, envelope))
                continue
            with self.tracing.restored(_traceparent(record)):
                await self._dead_letter(record, reason)
        return kept

    def _observe(self, persisted: Mixed) -> None:
        """Latency metrics, and a debug line per message in its own trace context."""
        now = self.clock.now()
        self.metrics.consumed(
            [(now - r.timestamp).total_seconds() for r, _ in persisted if r.timestamp],
            [(now - envelope.occurred_at).total_seconds() for _, envelope in persisted],
        )
        if not _debugging():
            return  # a line per message is for debugging; skip even building it
        for record, envelope in persisted:
            with self.tracing.restored(_traceparent(record)):
                log.debug(
                    "message_consumed",
                    outbox_id=envelope.outbox_id,
                    conversation_id=envelope.key,
                    event_id=envelope.event_id,
                )

    async def _dead_letter(self, record: IncomingRecord, reason: str) -> None:
        self.metrics.dead_lettered()
        log.error(
            "record_dead_lettered",
            reason=reason[:500],
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )
        await self._until_done("dead_letter", lambda: self.source.dead_letter(record, reason))

    async def _until_done(self, what: str, action: Callable[[], Awaitable[T]]) -> T:
        return await self._patience().until_done(what, action)

    def _patience(self) -> Patience:
        return Patience(self.policy, self.stopping, self.sleep)

    def _events(self) -> EventHandling:
        return EventHandling(
            self.handlers, self.clock, self._patience(), self.handler_attempts, self._dead_letter
        )


def _traceparent(record: IncomingRecord) -> str | None:
    return valid_traceparent(record.header(TRACEPARENT_HEADER))


def _debugging() -> bool:
    return logging.getLogger(__name__).isEnabledFor(logging.DEBUG)


def _check_key(record: IncomingRecord, envelope: AnyEnvelope) -> None:
    """The record key routes a conversation to one partition, which keeps its order: a
    record without it, or with another conversation's, did not come from our relay."""
    if record.key is None:
        raise MalformedEnvelope("record has no key (expected the conversation id)")
    if record.key != envelope.key.encode():
        raise MalformedEnvelope("record key does not match the envelope's conversation id")


def describe(error: BaseException) -> str:
    """An error for a log line or a DLQ reason: its type (and its driver error's), never
    its text, which may quote the statement's parameters and so a message. The errors the
    adapters raise in the application's words carry a text written for logs."""
    if isinstance(error, StoreUnavailable | BusUnavailable):
        return f"{type(error).__name__}: {error}"[:500]
    cause = getattr(error, "orig", None) or error.__cause__
    return type(error).__name__ + (f" ({type(cause).__name__})" if cause is not None else "")


def _malformed(error: Exception) -> str:
    """The reason a record that failed to decode is dead-lettered."""
    if isinstance(error, MalformedEnvelope):
        return str(error)
    return f"cannot decode: {describe(error)}"


def _conflict(event_id: str, where: str) -> str:
    return f"duplicate event_id {event_id} with a different payload than the one {where}"


def _ms(started: float, ended: float | None = None) -> float:
    """Milliseconds from `started` to `ended`, or to now."""
    end = time.perf_counter() if ended is None else ended
    return round((end - started) * 1000, 2)
