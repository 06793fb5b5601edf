"""Operating the outbox (dead letters, requeue, sweep, purge, stats) against the fakes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chat_outbox.application.operate.operations import (
    held_behind_dead,
    list_dead,
    outbox_stats,
    purge_consumed,
    requeue_dead,
    sweep_stale_published,
)
from chat_outbox.application.ports import DeadSelector
from chat_outbox.domain import OutboxStatus, PublishFailure
from tests.unit.conftest import (
    T0,
    Harness,
    failing,
)
from tests.unit.use_cases import (
    TIMEOUT,
    fail_relay,
    make_dead,
    relay_all,
    relay_and_consume,
)

pytestmark = pytest.mark.unit


async def test_requeue_dead_by_id_moves_only_that_row(harness: Harness) -> None:
    """Requeueing one dead id puts it back to pending and leaves other dead rows dead."""
    target = await make_dead(harness, "a")
    other = await make_dead(harness, "b")

    moved = await requeue_dead(harness.uow, harness.clock, DeadSelector(outbox_id=target))

    assert moved == 1
    assert (harness.status(target), harness.status(other)) == (
        OutboxStatus.PENDING,
        OutboxStatus.DEAD,
    )


async def test_requeue_dead_by_conversation_moves_only_its_rows(harness: Harness) -> None:
    """Requeueing a conversation moves its dead row and no other conversation's."""
    mine = await make_dead(harness, "a")
    theirs = await make_dead(harness, "b")

    moved = await requeue_dead(harness.uow, harness.clock, DeadSelector(conversation_id="a"))

    assert moved == 1
    assert harness.status(mine) is OutboxStatus.PENDING
    assert harness.status(theirs) is OutboxStatus.DEAD


async def test_a_dead_message_holds_back_its_conversation_until_requeued(
    harness: Harness,
) -> None:
    """Invariant 6: rows after a dead one wait; requeueing releases all of them in order."""
    dead = await make_dead(harness, "a")
    held = [await harness.record("a", text) for text in ("two", "three")]
    other = await harness.record("b")

    await harness.relay().relay_due()
    assert harness.published_event_ids() == [other.event_id]
    assert [harness.status(row.id) for row in held] == [OutboxStatus.PENDING] * 2

    await requeue_dead(harness.uow, harness.clock, DeadSelector(conversation_id="a"))
    await relay_all(harness)

    dead_event = harness.store.outbox[dead].event_id
    assert harness.published_event_ids()[1:] == [dead_event] + [row.event_id for row in held]


async def test_requeue_all_dead_moves_every_dead_row_in_small_batches(harness: Harness) -> None:
    """Requeueing all, a row per transaction, moves every dead row and nothing else."""
    dead = [await make_dead(harness, conv) for conv in ("a", "b", "c")]
    published = await harness.record("d")
    await harness.relay().relay_due()

    moved = await requeue_dead(harness.uow, harness.clock, DeadSelector(), batch=1)

    assert moved == 3
    assert [harness.status(i) for i in dead] == [OutboxStatus.PENDING] * 3
    assert harness.status(published.id) is OutboxStatus.PUBLISHED


async def test_requeued_row_has_retries_reset_and_is_published_again(harness: Harness) -> None:
    """A row dead from exhausted retries restarts at retry_count 0 and reaches the bus."""
    outbox_id = await fail_relay(harness, PublishFailure("timeout"), max_retry=1)
    harness.clock.advance(timedelta(minutes=1))
    await requeue_dead(harness.uow, harness.clock, DeadSelector(outbox_id=outbox_id))
    requeued = harness.row(outbox_id)
    assert (requeued.retry_count, requeued.next_retry_at) == (0, harness.clock.now())

    await harness.relay().relay_due()

    assert harness.status(outbox_id) is OutboxStatus.PUBLISHED


async def test_list_dead_shows_dead_rows_with_their_errors(harness: Harness) -> None:
    """The dead-letter listing holds the dead rows, oldest first, with last_error."""
    first = await make_dead(harness, "a")
    second = await make_dead(harness, "b")

    dead = await list_dead(harness.uow, DeadSelector())

    assert [(m.id, m.last_error) for m in dead] == [(first, "rejected"), (second, "rejected")]


async def test_sweep_returns_stale_published_rows_to_pending(harness: Harness) -> None:
    """Rows published before the cutoff and never consumed go back to pending, due now."""
    stale = await harness.record("a")
    await harness.relay().relay_due()
    harness.clock.advance(timedelta(minutes=10))
    fresh = await harness.record("b")
    await harness.relay().relay_due()

    moved = await sweep_stale_published(
        harness.uow, harness.clock, published_before=T0 + timedelta(minutes=5)
    )

    assert moved == 1
    assert (harness.status(stale.id), harness.row(stale.id).next_retry_at) == (
        OutboxStatus.PENDING,
        harness.clock.now(),
    )
    assert harness.status(fresh.id) is OutboxStatus.PUBLISHED


async def test_sweep_leaves_consumed_rows_alone(harness: Harness) -> None:
    """A consumed row is not swept, however old its publish."""
    row = await harness.record()
    await relay_and_consume(harness)
    harness.clock.advance(timedelta(hours=1))

    moved = await sweep_stale_published(harness.uow, harness.clock, harness.clock.now())

    assert (moved, harness.status(row.id)) == (0, OutboxStatus.CONSUMED)


async def test_swept_row_is_republished_and_consumed_once(harness: Harness) -> None:
    """A swept row is published again; consuming both copies adds one history entry."""
    row = await harness.record()
    await harness.relay().relay_due()
    harness.clock.advance(timedelta(minutes=1))
    await sweep_stale_published(harness.uow, harness.clock, harness.clock.now())
    await harness.relay().relay_due()

    await harness.consumer().consume_batch(TIMEOUT)

    assert harness.published_event_ids() == [row.event_id, row.event_id]
    assert (harness.status(row.id), len(harness.store.history)) == (OutboxStatus.CONSUMED, 1)


async def test_purge_deletes_only_consumed_rows_older_than_cutoff(harness: Harness) -> None:
    """Purging removes consumed rows consumed before the cutoff, and keeps everything else."""
    old = await harness.record("a")
    await relay_and_consume(harness)
    old_dead = await make_dead(harness, "b")
    old_pending = await harness.record("c")
    harness.clock.advance(timedelta(days=2))
    recent = await harness.record("d")
    harness.bus.fail_with = failing(PublishFailure("timeout"), when=lambda r: r.key == "c")
    await relay_and_consume(harness)

    deleted = await purge_consumed(harness.uow, consumed_before=T0 + timedelta(days=1), batch=1)

    assert deleted == 1
    assert sorted(harness.store.outbox) == sorted([old_dead, old_pending.id, recent.id])
    assert harness.status(recent.id) is OutboxStatus.CONSUMED
    assert old.event_id in harness.store.history


async def test_purge_keeps_row_consumed_exactly_at_cutoff(harness: Harness) -> None:
    """The cutoff is exclusive: a row consumed at that instant stays."""
    row = await harness.record()
    await relay_and_consume(harness)

    deleted = await purge_consumed(harness.uow, consumed_before=T0)

    assert (deleted, list(harness.store.outbox)) == (0, [row.id])


async def test_stats_count_rows_by_status(harness: Harness) -> None:
    """Stats count every status, zeros included, and the dead count."""
    await make_dead(harness, "a")
    await harness.record("b")
    await relay_and_consume(harness)
    await harness.record("c")
    await harness.record("d")
    await harness.relay().relay_due()
    await harness.record("e")

    stats = await outbox_stats(harness.uow)

    assert stats.counts == {
        OutboxStatus.PENDING: 1,
        OutboxStatus.PUBLISHED: 2,
        OutboxStatus.CONSUMED: 1,
        OutboxStatus.DEAD: 1,
    }
    assert stats.dead == 1


async def test_stats_give_oldest_pending_and_published_times(harness: Harness) -> None:
    """Stats report when the oldest still-pending and oldest unconsumed published rows began."""
    await harness.record("consumed")
    await relay_and_consume(harness)
    harness.clock.advance(timedelta(minutes=1))
    await harness.record("published")
    await harness.relay().relay_due()
    harness.clock.advance(timedelta(minutes=1))
    await harness.record("pending-1")
    harness.clock.advance(timedelta(minutes=1))
    await harness.record("pending-2")

    stats = await outbox_stats(harness.uow)

    assert (stats.oldest_pending_at, stats.oldest_published_at) == (
        T0 + timedelta(minutes=2),
        T0 + timedelta(minutes=1),
    )


async def test_stats_of_empty_outbox_have_no_oldest_times(harness: Harness) -> None:
    """With nothing pending or published, the oldest times are None and counts are zero."""
    stats = await outbox_stats(harness.uow)

    assert (stats.oldest_pending_at, stats.oldest_published_at) == (None, None)
    assert set(stats.counts.values()) == {0}


async def test_stats_and_the_dead_listing_show_messages_held_behind_a_dead_one(
    harness: Harness,
) -> None:
    """Invariant 6's hold is visible: stats counts held rows, and per dead conversation too."""
    await make_dead(harness, "a")
    await harness.record("a", "two")
    await harness.record("a", "three")
    await harness.record("b", "free")

    figures = await outbox_stats(harness.uow)
    held = await held_behind_dead(harness.uow, ["a", "b"])

    assert figures.held == 2
    assert held == {"a": 2, "b": 0}
