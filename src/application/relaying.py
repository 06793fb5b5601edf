"""Relay due outbox messages to the bus and record each one's outcome."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import attrs
import structlog

from application.chores import repeat, wait_or_stop
from application.errors import StoreUnavailable
from application.metrics import Metrics, NoMetrics
from application.operations import sweep_stale_published
from application.ports import (
    Clock,
    MessageBus,
    OutgoingRecord,
    UnitOfWork,
    UnitOfWorkFactory,
    Wakeups,
)
from application.tally import add_up
from application.tracing import TRACEPARENT_HEADER
from domain import (
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
        async with self.uow() as uow:
            started = time.perf_counter()
            claimed = await uow.outbox.claim_due(self.clock.now(), self.batch_size, None)
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
        """Publish the whole batch at once (claims hold one message per conversation) and
        decide each message's transition from its own outcome."""
        transitions: list[Transition] = []
        sendable: list[tuple[OutboxMessage, OutgoingRecord]] = []
        for message in claimed:
            record = self._record_for(message, transitions)
            if record is not None:
                sendable.append((message, record))
        started = time.perf_counter()
        results = await self.bus.publish([record for _, record in sendable])
        publish_ms = _ms_since(started)
        at = self.clock.now()
        for (message, _), result in zip(sendable, results, strict=True):
            if result is None:
                transitions.append(_certain(message.mark_published(at)))
                continue
            transitions.append(_certain(message.record_publish_failure(result, at, self.policy)))
            _log_failure(message, result)
        self._observe(claimed, transitions)
        return Batch(claimed, transitions, claim_ms, publish_ms)

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


@attrs.frozen
class Polling:
    """Adaptive polling: the interval doubles while idle, from `minimum` to `maximum`, and
    snaps back on work or a wake-up. `coalesce` waits a moment after a wake-up so a burst
    of commits becomes one batch instead of many tiny ones."""

    minimum: float = 0.05
    maximum: float = 1.0
    coalesce: float = 0.005


async def run_relay(
    relay: Relay,
    stopping: asyncio.Event,
    *,
    polling: Polling | None = None,
    wakeups: Wakeups | None = None,
    once: bool = False,
    outage_policy: RetryPolicy | None = None,
) -> RelayReport:
    """Relay until `stopping` is set (or, with once, until nothing is due). The batch in
    flight when the stop comes is finished first. An unreachable database is waited out."""
    polling = polling or Polling()
    totals = RelayReport()
    outage = outage_policy or RetryPolicy(cap=timedelta(seconds=30))
    failures = 0
    interval = polling.minimum
    in_flight: Batch | None = None
    while not stopping.is_set():
        try:
            report, in_flight = await relay.step(in_flight)
        except StoreUnavailable as error:
            # in_flight is kept: its outcomes are written by the next step that succeeds.
            failures += 1
            delay = outage.ceiling(failures).total_seconds()
            log.warning("relay_store_unavailable", error=str(error), retry_in_s=delay)
            await wait_or_stop(stopping, delay)
            continue
        totals = add_up(totals, report)
        if report.claimed and report.retried == report.claimed:
            # Every message of a batch failed: the bus itself is down. Back off as a whole
            # (the rows' own backoff does not grow for an unreachable bus).
            failures += 1
            delay = outage.ceiling(failures).total_seconds()
            log.warning("relay_bus_unavailable", retry_in_s=delay, batch=report.claimed)
            await wait_or_stop(stopping, delay)
        elif report.claimed:
            failures = 0
        if in_flight is not None or report.published:
            interval = polling.minimum
            continue  # more may be due: the published heads' successors are heads now
        if once:
            break
        if await _idle(stopping, wakeups, interval):
            interval = polling.minimum
            await wait_or_stop(stopping, polling.coalesce)
        else:
            interval = min(interval * 2, polling.maximum)
    if in_flight is not None:
        totals = add_up(totals, await _settle_on_exit(relay, in_flight))
    return totals


async def _settle_on_exit(relay: Relay, batch: Batch) -> RelayReport:
    try:
        return await relay.settle(batch)
    except StoreUnavailable as error:
        # Not lost: the rows stay leased, and a relay publishes them again after the lease.
        log.error("relay_outcomes_unwritten", error=str(error), rows=len(batch.claimed))
        return RelayReport()


async def _idle(stopping: asyncio.Event, wakeups: Wakeups | None, timeout: float) -> bool:
    """Wait for a wake-up, the stop, or the timeout; True when something woke us."""
    if wakeups is None:
        await wait_or_stop(stopping, timeout)
        return False
    woken = asyncio.ensure_future(wakeups.wait(timeout))
    stop = asyncio.ensure_future(stopping.wait())
    done, pending = await asyncio.wait({woken, stop}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    return woken in done and woken.result()


async def run_sweeper(
    uow: UnitOfWorkFactory,
    clock: Clock,
    stopping: asyncio.Event,
    *,
    stale_after: timedelta,
) -> int:
    """Every so often, send rows published but never consumed back to pending, so a broker
    that lost data is recovered from. Several relays may sweep at once: writes are guarded."""
    swept_total = 0

    async def round_() -> None:
        nonlocal swept_total
        swept = await sweep_stale_published(uow, clock, clock.now() - stale_after)
        swept_total += swept
        if swept:
            stale_after_s = stale_after.total_seconds()
            log.warning("stale_published_swept", rows=swept, stale_after_s=stale_after_s)

    every = min(60.0, max(stale_after.total_seconds() / 4, 0.5))
    await repeat("sweep", round_, stopping, every, wait_first=True)
    return swept_total
