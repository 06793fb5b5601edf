"""Relay due outbox messages to the bus and record each one's outcome."""

from __future__ import annotations

import time
from datetime import timedelta

import attrs
import structlog

from chat_outbox.application.metrics import Metrics, NoMetrics
from chat_outbox.application.ports import (
    EVERY_CONVERSATION,
    Clock,
    MessageBus,
    OutgoingRecord,
    UnitOfWork,
    UnitOfWorkFactory,
)
from chat_outbox.application.relay.sharing import RelayShares
from chat_outbox.application.tracing import TRACEPARENT_HEADER
from chat_outbox.domain import (
    SCHEMA_VERSION,
    Envelope,
    MalformedEnvelope,
    OutboxMessage,
    OutboxStatus,
    PublishFailure,
    RetryPolicy,
    Transition,
)

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
    """A published batch whose outcomes are yet to be written."""

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


async def _write(uow: UnitOfWork, batch: Batch) -> int:
    return await uow.outbox.apply(batch.transitions)


@attrs.frozen
class Relay:
    uow: UnitOfWorkFactory
    bus: MessageBus
    clock: Clock
    policy: RetryPolicy = attrs.field(factory=RetryPolicy)
    batch_size: int = 500
    lease: timedelta | None = timedelta(seconds=60)
    """How long a claim hides its rows from other relays. None: lock them instead, in one
    transaction held open through the publish (PostgreSQL, MariaDB); the database ends a
    hung relay's transaction (idle_in_transaction_session_timeout), releasing its rows."""
    metrics: Metrics = attrs.field(factory=NoMetrics)
    shares: RelayShares | None = None
    """Locking relays only: share the conversations with the other live relays."""

    async def relay_due(self) -> RelayReport:
        """One claim-publish-write round."""
        report, batch = await self.step(None)
        return report if batch is None else await self.settle(batch)

    async def step(self, previous: Batch | None) -> tuple[RelayReport, Batch | None]:
        """Write the previous batch's outcomes and claim the next batch in one transaction
        (one commit per batch), then publish the new batch. Returns the previous batch's
        report and the new batch, whose outcomes the next step (or settle) writes. Holding
        locks instead, a step is a whole round, so its report is its own batch's."""
        if self.lease is None:
            assert previous is None, "a locking relay leaves no batch in flight"
            return await self._locked_round(), None
        async with self.uow() as uow:
            started = time.perf_counter()
            applied = await _write(uow, previous) if previous else 0
            written = time.perf_counter()
            claimed = await uow.outbox.claim_due(self.clock.now(), self.batch_size, self.lease)
            await uow.commit()
        claim_ms = _ms_since(written)  # the commit it shares with the outcomes counts here
        report = RelayReport()
        if previous:
            report = previous.report(applied)
            _log_batch(previous, report, settle_ms=(written - started) * 1000)
        if not claimed:
            return report, None
        return report, await self._publish(claimed, claim_ms)

    async def _locked_round(self) -> RelayReport:
        """Claim (row locks), publish and write the outcomes in one transaction: one
        statement fewer per batch than a lease, and a crashed relay's rows free at once."""
        shard = await self.shares.shard() if self.shares else EVERY_CONVERSATION
        async with self.uow() as uow:
            started = time.perf_counter()
            claimed = await uow.outbox.claim_due(self.clock.now(), self.batch_size, None, shard)
            if not claimed:
                return RelayReport()
            batch = await self._publish(claimed, _ms_since(started))
            written = time.perf_counter()
            applied = await _write(uow, batch)
            await uow.commit()
        report = batch.report(applied)
        _log_batch(batch, report, settle_ms=_ms_since(written))
        return report

    async def settle(self, batch: Batch) -> RelayReport:
        """Write a batch's outcomes on their own, when no claim follows."""
        started = time.perf_counter()
        async with self.uow() as uow:
            applied = await _write(uow, batch)
            await uow.commit()
        report = batch.report(applied)
        _log_batch(batch, report, settle_ms=_ms_since(started))
        return report

    async def _publish(self, claimed: list[OutboxMessage], claim_ms: float) -> Batch:
        """Publish the batch and decide each message's transition from its own outcome. A
        conversation whose message failed sends nothing more this batch: its later rows stay
        pending, behind it. A bus that keeps key order takes the batch in one call; any
        other takes it in waves, the nth wave holding each conversation's nth message."""
        transitions: list[Transition] = []
        stopped: set[str] = set()
        started = time.perf_counter()
        whole = self.bus.keeps_key_order and len({message.topic for message in claimed}) == 1
        for wave in [claimed] if whole else _waves(claimed):
            await self._publish_wave(wave, stopped, transitions)
        self._observe(claimed, transitions)
        return Batch(claimed, transitions, claim_ms, _ms_since(started))

    async def _publish_wave(
        self, wave: list[OutboxMessage], stopped: set[str], transitions: list[Transition]
    ) -> None:
        """Send one wave, skipping the `stopped` conversations; a message that cannot be
        encoded or fails stops its conversation (the bus did not deliver its later ones)."""
        sendable: list[tuple[OutboxMessage, OutgoingRecord]] = []
        for message in wave:
            if message.message_key in stopped:
                continue
            record = self._record_for(message, transitions)
            if record is None:
                stopped.add(message.message_key)
            else:
                sendable.append((message, record))
        if not sendable:
            return
        results = await self.bus.publish([record for _, record in sendable])
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
            value = Envelope.encode_stored(message)
        except MalformedEnvelope as error:
            fatal = PublishFailure.fatal(str(error))
            transitions.append(
                _certain(message.record_publish_failure(fatal, self.clock.now(), self.policy))
            )
            log.error("outbox_row_unreadable", outbox_id=message.id, error=str(error))
            return None
        return OutgoingRecord(message.topic, message.message_key, value, headers_for(message))


def _waves(claimed: list[OutboxMessage]) -> list[list[OutboxMessage]]:
    """The nth list holds each conversation's nth message, in claim (id) order. Heads-only
    claims make one wave, and so one publish, per batch."""
    waves: list[list[OutboxMessage]] = []
    depth: dict[str, int] = {}
    for message in claimed:
        n = depth.get(message.message_key, 0)
        depth[message.message_key] = n + 1
        if n == len(waves):
            waves.append([])
        waves[n].append(message)
    return waves


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
