"""The outbox journal in the in-memory fake, and the journey timeline drawn from it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chat_outbox.application.operate import operations
from chat_outbox.application.operate.journeys import timeline
from chat_outbox.application.ports import DeadSelector
from chat_outbox.domain import OutboxEvent, OutboxStatus, PublishFailure
from chat_outbox.domain.journal import JournalEntry
from tests.unit.conftest import T0, Harness, failing
from tests.unit.test_dashboard_views import T0 as RECORDED
from tests.unit.test_dashboard_views import message
from tests.unit.use_cases import relay_and_consume

pytestmark = pytest.mark.unit

FAILED, DEAD = OutboxEvent.PUBLISH_FAILED, OutboxEvent.PUBLISH_FAILED_FATALLY


def lines(harness: Harness, outbox_id: int) -> list[tuple[OutboxEvent, int, str | None]]:
    return [
        (e.event, e.attempt, e.error) for e in harness.store.journal if e.outbox_id == outbox_id
    ]


async def fail(harness: Harness, failure: PublishFailure) -> None:
    harness.bus.fail_with = failing(failure)
    await harness.relay().relay_due()
    harness.bus.fail_with = None
    harness.clock.advance(timedelta(minutes=10))


async def test_the_fake_journals_each_failure_with_its_error_and_not_the_publish() -> None:
    harness = Harness()
    row = await harness.record()
    await fail(harness, PublishFailure("first"))
    await fail(harness, PublishFailure("second"))
    await relay_and_consume(harness)
    assert harness.status(row.id) is OutboxStatus.CONSUMED
    assert lines(harness, row.id) == [(FAILED, 1, "first"), (FAILED, 2, "second")]


async def test_the_fake_journals_a_death_and_a_requeue() -> None:
    harness = Harness()
    row = await harness.record()
    await fail(harness, PublishFailure.fatal("too large"))
    await operations.requeue_dead(harness.uow, harness.clock, DeadSelector(row.id))
    assert lines(harness, row.id) == [(DEAD, 1, "too large"), (OutboxEvent.REQUEUED, 0, None)]


async def test_the_fakes_journal_rolls_back_with_its_unit_of_work() -> None:
    """A failure applied in a unit of work that is not committed leaves no journal line."""
    harness = Harness()
    row = await harness.record()
    async with harness.uow() as unit:
        stored = await unit.outbox.get(row.id)
        assert stored is not None
        failed = stored.record_publish_failure(PublishFailure("x"), T0, harness.policy)
        assert failed is not None
        assert await unit.outbox.apply([failed]) == 1
    assert harness.store.journal == []


async def test_the_fake_journals_a_retry_written_twice_once() -> None:
    """Outcomes written again after a lost commit leave one line, as on the databases."""
    harness = Harness()
    row = await harness.record()
    failed = row.record_publish_failure(PublishFailure("lost commit"), T0, harness.policy)
    assert failed is not None
    for _ in range(2):
        async with harness.uow() as unit:
            assert await unit.outbox.apply([failed]) == 1
            await unit.commit()
    assert lines(harness, row.id) == [(FAILED, 1, "lost commit")]


async def test_the_fake_drops_a_purged_rows_journal_and_keeps_the_others() -> None:
    harness = Harness()
    purged = await harness.record("c-1")
    await fail(harness, PublishFailure("once"))
    await relay_and_consume(harness)
    kept = await harness.record("c-2")
    await fail(harness, PublishFailure.fatal("rejected"))
    assert await operations.purge_consumed(harness.uow, harness.clock.now()) == 1
    assert lines(harness, purged.id) == []
    assert lines(harness, kept.id) == [(DEAD, 1, "rejected")]


def entry(event: OutboxEvent, seconds: float, attempt: int, error: str | None) -> JournalEntry:
    at = RECORDED + timedelta(seconds=seconds)
    return JournalEntry(1, event, attempt, error, at, at + timedelta(seconds=2))


def test_a_journey_shows_each_failed_attempt_with_its_error_time_and_delay() -> None:
    published = message(
        status=OutboxStatus.PUBLISHED, retry_count=2, published_at=RECORDED + timedelta(seconds=9)
    )
    journal = [entry(FAILED, 1, 1, "timeout"), entry(FAILED, 4, 2, "not leader")]

    steps = timeline(published, None, journal)

    assert [(s.label, s.error, s.since_previous) for s in steps] == [
        ("recorded", None, None),
        ("failed", "timeout", timedelta(seconds=1)),
        ("failed", "not leader", timedelta(seconds=3)),
        ("published", None, timedelta(seconds=5)),
    ]
    assert steps[2].detail == "attempt 2 of 20; next try 2.0 s later"


def test_a_journey_puts_a_sweep_after_the_publish_it_undid() -> None:
    """A swept row keeps its first published_at; the timeline orders the steps by time, and
    a pending row ends with its next attempt."""
    swept = message(retry_count=0, published_at=RECORDED + timedelta(seconds=1))
    journal = [entry(OutboxEvent.SWEPT, 5, 0, None)]
    steps = timeline(swept, None, journal)
    assert [s.label for s in steps] == ["recorded", "published", "swept", "next attempt"]


def test_a_dead_journey_ends_on_its_death_waiting_for_an_operator() -> None:
    dead = message(status=OutboxStatus.DEAD, retry_count=1, last_error="too large")
    steps = timeline(dead, None, [entry(DEAD, 1, 1, "too large")])
    assert [(s.label, s.error) for s in steps] == [("recorded", None), ("dead", "too large")]
    assert steps[-1].detail == "attempt 1 of 20; waits for an operator's requeue"
