"""Relay due outbox messages to the bus and record each one's outcome."""

from __future__ import annotations

import time

import attrs
import structlog

from chat_outbox.application.metrics import Metrics, NoMetrics
from chat_outbox.application.ports import Clock, MessageBus, OutboxClaims, OutgoingRecord
from chat_outbox.application.ports.codec import EnvelopeCodec
from chat_outbox.application.tracing import TRACEPARENT_HEADER
from chat_outbox.domain import (
    SCHEMA_VERSION,
    MalformedEnvelope,
    OutboxMessage,
    OutboxStatus,
    PublishFailure,
    RetryPolicy,
    Transition,
)
from chat_outbox.domain.envelope import PlainEnvelopeCodec

log = structlog.get_logger(__name__)


@attrs.frozen
class RelayReport:
    claimed: int = 0
    published: int = 0
    retried: int = 0
    dead: int = 0
    unchanged: int = 0
    """Outcomes the guarded write refused: the row had moved on (for example, consumed)."""
    deferred: int = 0
    """Claimed but not sent: an earlier message of its conversation failed in this batch."""


def is_trickle(claimed: int, batch_size: int) -> bool:
    """A round under a quarter full: the backlog is gone, and rounds are paced (loop.Polling)."""
    return claimed < batch_size / 4


_SCHEMA_VERSION_HEADER = ("schema_version", str(SCHEMA_VERSION).encode())


def headers_for(message: OutboxMessage) -> tuple[tuple[str, bytes], ...]:
    headers = (
        ("event_id", message.event_id.encode()),
        ("biz_type", message.biz_type.encode()),
        _SCHEMA_VERSION_HEADER,
    )
    if message.traceparent is None:
        return headers
    return (*headers, (TRACEPARENT_HEADER, message.traceparent.encode()))


@attrs.frozen
class Batch:
    """A published batch and the transitions decided from its outcomes."""

    claimed: list[OutboxMessage]
    transitions: list[Transition]
    claim_ms: float = 0.0
    publish_ms: float = 0.0

    @property
    def first_error(self) -> str | None:
        """The first failure's error: enough to tell an outage from one bad record."""
        failed = (t for t in self.transitions if t.to_status is not OutboxStatus.PUBLISHED)
        return next((t.last_error for t in failed), None)

    def report(self, applied: int) -> RelayReport:
        by_status = {status: 0 for status in OutboxStatus}
        for transition in self.transitions:
            by_status[transition.to_status] += 1
        return RelayReport(
            claimed=len(self.claimed),
            published=by_status[OutboxStatus.PUBLISHED],
            retried=by_status[OutboxStatus.PENDING],
            dead=by_status[OutboxStatus.DEAD],
            unchanged=len(self.transitions) - applied,
            deferred=len(self.claimed) - len(self.transitions),
        )


@attrs.frozen
class Relay:
    """One round: claim, encode, publish the batch in one call, decide each message's
    transition from its own outcome, settle. How rows are claimed (leases, row locks, a
    share of the conversations) is the claims' business; keeping a conversation's order
    through a failure is the bus's (a failed record stops its key)."""

    claims: OutboxClaims
    bus: MessageBus
    clock: Clock
    policy: RetryPolicy = attrs.field(factory=RetryPolicy)
    batch_size: int = 500
    metrics: Metrics = attrs.field(factory=NoMetrics)
    codec: EnvelopeCodec = attrs.field(factory=PlainEnvelopeCodec)

    async def relay_due(self) -> RelayReport:
        """One claim-publish-settle round."""
        started = time.perf_counter()
        async with self.claims.claim(self.clock.now(), self.batch_size) as claimed:
            if not claimed.messages:
                return RelayReport()
            batch = await self._publish(list(claimed.messages), _ms_since(started))
            written = time.perf_counter()
            applied = await claimed.settle(batch.transitions)
        report = batch.report(applied)
        _log_batch(batch, report, settle_ms=_ms_since(written))
        return report

    async def stop(self) -> None:
        """Hand back what the claims still hold; the relay may start again afterwards."""
        await self.claims.stop()

    async def _publish(self, claimed: list[OutboxMessage], claim_ms: float) -> Batch:
        """Publish the batch in one call and decide each message's transition. A message
        that cannot be encoded stops its conversation before sending, and one that fails
        stops it in the bus: either way its conversation's later messages stay pending,
        behind it, with no transition (deferred)."""
        transitions: list[Transition] = []
        stopped: set[str] = set()
        started = time.perf_counter()
        sendable: list[tuple[OutboxMessage, OutgoingRecord]] = []
        for message in claimed:
            if message.message_key in stopped:
                continue
            record = self._record_for(message, transitions)
            if record is None:
                stopped.add(message.message_key)
            else:
                sendable.append((message, record))
        results = await self.bus.publish([record for _, record in sendable]) if sendable else []
        at = self.clock.now()
        for (message, _), result in zip(sendable, results, strict=True):
            if message.message_key in stopped:
                continue  # behind its conversation's failure in this call: not sent
            if result is None:
                transitions.append(_certain(message.mark_published(at)))
                continue
            stopped.add(message.message_key)
            transitions.append(_certain(message.record_publish_failure(result, at, self.policy)))
            _log_failure(message, result)
        self._observe(claimed, transitions)
        return Batch(claimed, transitions, claim_ms, _ms_since(started))

    def _observe(self, claimed: list[OutboxMessage], transitions: list[Transition]) -> None:
        created = {message.id: message.created_at for message in claimed}
        self.metrics.published(
            [
                (t.at - created[t.outbox_id]).total_seconds()
                for t in transitions
                if t.to_status is OutboxStatus.PUBLISHED
            ]
        )
        to = [t.to_status for t in transitions]
        self.metrics.publish_failed(to.count(OutboxStatus.PENDING), to.count(OutboxStatus.DEAD))

    def _record_for(
        self, message: OutboxMessage, transitions: list[Transition]
    ) -> OutgoingRecord | None:
        """The record to send, or None when the row cannot be encoded (it goes dead)."""
        try:
            value = self.codec.encode(message)
        except MalformedEnvelope as error:
            fatal = PublishFailure.fatal(str(error))
            transitions.append(
                _certain(message.record_publish_failure(fatal, self.clock.now(), self.policy))
            )
            log.error("outbox_row_unreadable", outbox_id=message.id, error=str(error))
            return None
        return OutgoingRecord(message.topic, message.message_key, value, headers_for(message))


def _log_failure(message: OutboxMessage, failure: PublishFailure) -> None:
    """A failed publish is a debug line (a broker outage fails every message of a batch; the
    batch's line counts them), unless the message went dead: an operator must act on that."""
    fields = {
        "outbox_id": message.id,
        "conversation_id": message.message_key,
        "error": failure.reason,
        "retryable": failure.retryable,
        "retry_count": message.retry_count,
    }
    if message.status is OutboxStatus.DEAD:
        log.error("message_dead", **fields)
    else:
        log.debug("publish_failed", **fields)


def _log_batch(batch: Batch, report: RelayReport, settle_ms: float) -> None:
    """The canonical line: one per batch, once its outcomes are written (never per message,
    so logging costs the hot path one line per up to relay_batch_size rows). A warning when
    a publish failed, with the first error."""
    failed = report.retried + report.dead
    (log.warning if failed else log.info)(
        "relay_batch",
        **attrs.asdict(report),
        **({"first_error": batch.first_error} if failed else {}),
        claim_ms=round(batch.claim_ms, 2),
        publish_ms=round(batch.publish_ms, 2),
        settle_ms=round(settle_ms, 2),
    )


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _certain(transition: Transition | None) -> Transition:
    # A freshly claimed row is pending, where every publish outcome changes it.
    assert transition is not None, "a claimed row must be pending"
    return transition
