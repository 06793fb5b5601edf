"""Random interleavings of record, relay, late acks, consume, crash, requeue and sweep
must keep the ARCHITECTURE.md invariants."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine, Iterator
from datetime import timedelta
from typing import Any, Literal, TypeVar

import pytest
import structlog
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from chat_outbox.application.operate.operations import requeue_dead, sweep_stale_published
from chat_outbox.application.ports import DeadSelector, OutgoingRecord
from chat_outbox.application.relay.relaying import headers_for
from chat_outbox.domain import (
    Envelope,
    OutboxEvent,
    OutboxMessage,
    OutboxStatus,
    PublishFailure,
    RetryPolicy,
    Transition,
)
from tests.unit.conftest import (
    Harness,
    LostAcks,
    status_changes_allowed_by,
)

pytestmark = pytest.mark.unit

T = TypeVar("T")
Outcome = Literal["ack", "retryable", "fatal"]

MAX_RETRY = 3
BATCH = 3
LEASE = timedelta(seconds=2)
"""Short, so that relays racing a slow relay past its lease happen often."""
CONVERSATIONS = ("a", "b", "c")

_E = OutboxEvent
RELAY_EVENTS = frozenset({_E.PUBLISH_ACKED, _E.PUBLISH_FAILED, _E.PUBLISH_FAILED_FATALLY})
ACK_EVENTS = frozenset({_E.PUBLISH_ACKED})
CONSUME_EVENTS = frozenset({_E.CONSUMED})
REQUEUE_EVENTS = frozenset({_E.REQUEUED})
SWEEP_EVENTS = frozenset({_E.SWEPT})
NO_EVENTS: frozenset[OutboxEvent] = frozenset()

OUTCOME = st.sampled_from(["ack", "retryable", "fatal"])
BATCH_OUTCOMES = st.one_of(
    st.just(("retryable",) * BATCH),
    st.just(("fatal",) * BATCH),
    st.lists(OUTCOME, min_size=BATCH, max_size=BATCH).map(tuple),
)


def _injector(outcomes: tuple[Outcome, ...]) -> Callable[[OutgoingRecord], PublishFailure | None]:
    planned = iter(outcomes)

    def fail_with(record: OutgoingRecord) -> PublishFailure | None:
        outcome = next(planned, "ack")
        if outcome == "ack":
            return None
        return PublishFailure(f"injected {outcome}", retryable=outcome == "retryable")

    return fail_with


class OutboxMachine(RuleBasedStateMachine):
    """The whole system on fakes; `observe` checks every status change a step made."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.system = Harness()
        self.relay = self.system.relay(batch_size=BATCH, lease=LEASE)
        self.consumer = self.system.consumer(batch_size=BATCH)
        self.awaiting_ack: list[OutboxMessage] = []
        self.statuses_of: dict[int, list[OutboxStatus]] = {}

    def run(self, step: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(step)

    def observe(self, events: frozenset[OutboxEvent]) -> None:
        """Record each row's status; fail on a change none of `events` allows."""
        allowed = status_changes_allowed_by(events)
        rows = self.system.store.outbox
        assert set(self.statuses_of) <= set(rows), "a recorded row disappeared"
        for outbox_id, row in rows.items():
            seen = self.statuses_of.setdefault(outbox_id, [])
            if not seen:
                assert row.status is OutboxStatus.PENDING, f"row {outbox_id} born {row.status}"
                seen.append(row.status)
            elif row.status != seen[-1]:
                change = (seen[-1], row.status)
                assert change in allowed, f"row {outbox_id}: {change} by {sorted(events)}"
                seen.append(row.status)

    def teardown(self) -> None:
        """Every run ends with a drain, unless a step already failed (then that error stands)."""
        try:
            if sys.exc_info()[1] is None:
                self.drain_and_check_nothing_is_lost()
        finally:
            self.loop.close()

    @initialize(jitter=st.sampled_from([0.0, 0.5, 1.0]))
    def choose_backoff_jitter(self, jitter: float) -> None:
        """With jitter 0 a failed row is due again at once, so retries exhaust quickly."""
        self.system.policy = RetryPolicy(rand=lambda: jitter)
        self.relay = self.system.relay(batch_size=BATCH, lease=LEASE)

    @rule(conversations=st.lists(st.sampled_from(CONVERSATIONS), min_size=1, max_size=3))
    def record(self, conversations: list[str]) -> None:
        for conversation in conversations:
            self.run(self.system.record(conversation, max_retry=MAX_RETRY))
        self.observe(NO_EVENTS)

    @rule(rounds=st.lists(BATCH_OUTCOMES, min_size=1, max_size=4))
    def relay_with_failures(self, rounds: list[tuple[Outcome, ...]]) -> None:
        """A few relay rounds; the i-th record of a round gets the i-th planned outcome."""
        for outcomes in rounds:
            self.system.bus.fail_with = _injector(outcomes)
            try:
                self.run(self.relay.relay_due())
            finally:
                self.system.bus.fail_with = None
            self.observe(RELAY_EVENTS)

    @rule()
    def claim_and_publish_but_hold_acks(self) -> None:
        """A slow relay: the records reach the bus now, their acks are written later."""
        self.run(self._claim_and_publish_holding_acks())
        self.observe(NO_EVENTS)

    async def _claim_and_publish_holding_acks(self) -> None:
        now = self.system.clock.now()
        async with self.system.claims(LEASE).claim(now, BATCH) as batch:
            claimed = list(batch.messages)
        records = [self._record_for(message) for message in claimed]
        assert await self.system.bus.publish(records) == [None] * len(records)
        self.awaiting_ack.extend(claimed)

    @staticmethod
    def _record_for(message: OutboxMessage) -> OutgoingRecord:
        envelope = Envelope.for_outbox_message(message)
        return OutgoingRecord(message.topic, envelope.key, envelope.encode(), headers_for(message))

    @precondition(lambda self: bool(self.awaiting_ack))
    @rule()
    def apply_late_acks(self) -> None:
        """The slow relay decides on its stale snapshots now and writes through the guard."""
        now = self.system.clock.now()
        acks = [message.mark_published(now) for message in self.awaiting_ack]
        self.awaiting_ack = []
        self.run(self._apply([ack for ack in acks if ack is not None]))
        self.observe(ACK_EVENTS)

    async def _apply(self, transitions: list[Transition]) -> None:
        async with self.system.uow() as uow:
            await uow.outbox.apply(transitions)
            await uow.commit()

    @rule(outcomes=BATCH_OUTCOMES)
    def slow_relay_acks_after_a_faster_relay_took_over(self, outcomes: tuple[Outcome, ...]) -> None:
        """The late-ack race in one step: a slow relay's lease runs out, another relay
        claims the same rows and decides their fate, then the slow relay's acks land."""
        self.claim_and_publish_but_hold_acks()
        self.system.clock.advance(LEASE)
        self.relay_with_failures([outcomes])
        if self.awaiting_ack:
            self.apply_late_acks()

    @rule()
    def consume(self) -> None:
        """The consumer handles one batch and acknowledges it."""
        self.run(self.consumer.consume_batch(0.0))
        self.observe(CONSUME_EVENTS)

    @rule()
    def consume_then_crash_before_ack(self) -> None:
        """The consumer commits a batch but dies before acknowledging it: redelivery follows."""
        lost = self.system.consumer(batch_size=BATCH, source=LostAcks(self.system.bus))
        self.run(lost.consume_batch(0.0))
        self.system.bus.crash_consumer()
        self.observe(CONSUME_EVENTS)

    @rule()
    def crash_consumer(self) -> None:
        """The consumer restarts from its last acknowledged position."""
        self.system.bus.crash_consumer()
        self.observe(NO_EVENTS)

    @rule()
    def requeue_all_dead(self) -> None:
        system = self.system
        self.run(requeue_dead(system.uow, system.clock, DeadSelector(), batch=BATCH))
        self.observe(REQUEUE_EVENTS)

    @rule()
    def sweep_all_published(self) -> None:
        system = self.system
        cutoff = system.clock.now() + timedelta(seconds=1)
        self.run(sweep_stale_published(system.uow, system.clock, cutoff, batch=BATCH))
        self.observe(SWEEP_EVENTS)

    @rule(seconds=st.sampled_from([0.25, 1, 5, 30, 61, 400]))
    def advance_clock(self, seconds: float) -> None:
        self.system.clock.advance(timedelta(seconds=seconds))
        self.observe(NO_EVENTS)

    @rule()
    def drain_and_check_nothing_is_lost(self) -> None:
        """Invariant 3: once the bus works and time passes, every row is consumed or dead,
        or (invariant 6) pending behind an earlier dead row of its conversation."""
        self.system.clock.advance(timedelta(days=1))
        # Alternate: consuming a dead row (allowed) can release the rows it held back.
        for _ in self._bounded("drain"):
            claimed = self.run(self.relay.relay_due()).claimed
            self.observe(RELAY_EVENTS)
            received = self.run(self.consumer.consume_batch(0.0)).received
            self.observe(CONSUME_EVENTS)
            if claimed == received == 0:
                break
        rows = self.system.store.outbox
        first_dead: dict[str, int] = {}
        for row in sorted(rows.values(), key=lambda r: r.id):
            if row.status is OutboxStatus.DEAD:
                first_dead.setdefault(row.message_key, row.id)
        stuck = {
            outbox_id: row.status
            for outbox_id, row in rows.items()
            if row.status not in (OutboxStatus.CONSUMED, OutboxStatus.DEAD)
            and not (
                row.status is OutboxStatus.PENDING
                and first_dead.get(row.message_key, outbox_id) < outbox_id
            )
        }
        assert stuck == {}, f"rows neither consumed nor dead after draining: {stuck}"

    def _bounded(self, what: str) -> Iterator[int]:
        yield from range(1000)
        raise AssertionError(f"{what} did not drain")

    @invariant()
    def each_conversation_is_first_published_in_recording_order(self) -> None:
        """Invariant 6: message n+1 of a conversation never reaches the bus before n."""
        first_seen: dict[str, list[int]] = {}
        seen: set[int] = set()
        for record in self.system.bus.log:
            outbox_id = Envelope.decode(record.value or b"").outbox_id
            if outbox_id not in seen:
                seen.add(outbox_id)
                first_seen.setdefault((record.key or b"").decode(), []).append(outbox_id)
        for conversation, ids in first_seen.items():
            assert ids == sorted(ids), f"conversation {conversation} published as {ids}"

    @invariant()
    def consumed_is_terminal(self) -> None:
        """Invariant 1: a row once consumed is consumed for ever."""
        for outbox_id, statuses in self.statuses_of.items():
            if OutboxStatus.CONSUMED in statuses:
                assert statuses[-1] is OutboxStatus.CONSUMED, f"row {outbox_id}: {statuses}"
                assert self.system.status(outbox_id) is OutboxStatus.CONSUMED

    @invariant()
    def history_holds_each_consumed_message_exactly_once(self) -> None:
        """Invariant 4: history entries and consumed rows match one to one, by event id."""
        store = self.system.store
        entries = list(store.history.values())
        assert len({e.outbox_id for e in entries}) == len(entries), "a message is in twice"
        for entry in entries:
            assert store.outbox[entry.outbox_id].event_id == entry.event_id
        consumed = {r.event_id for r in store.outbox.values() if r.status is OutboxStatus.CONSUMED}
        assert consumed == set(store.history)

    @invariant()
    def retries_are_bounded(self) -> None:
        """Invariant 5: retry_count never exceeds max_retry."""
        for row in self.system.store.outbox.values():
            assert 0 <= row.retry_count <= row.max_retry == MAX_RETRY


def test_random_interleavings_keep_the_outbox_invariants() -> None:
    """Records, flaky relays, late acks, redeliveries, requeues and sweeps keep invariants 1-5."""
    with structlog.testing.capture_logs():
        run_state_machine_as_test(
            OutboxMachine,
            settings=settings(max_examples=100, stateful_step_count=40, deadline=None),
        )
