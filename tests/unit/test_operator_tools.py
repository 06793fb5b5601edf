"""Dead-letter selection, requeue order, progress, the periodic purger and audit lines."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta

import attrs
import pytest
import structlog

from chat_outbox.adapters.memory import InMemoryUnitOfWork
from chat_outbox.application.operate.operations import list_dead, purge_consumed, requeue_dead
from chat_outbox.application.operate.retention import run_purger
from chat_outbox.application.ports import DeadSelector
from chat_outbox.application.relay.loop import run_relay
from chat_outbox.domain import OutboxStatus, PublishFailure
from chat_outbox.entrypoints.audit import Progress, audited
from tests.unit.conftest import T0, FlakyCommits, Harness, failing

pytestmark = pytest.mark.unit

TIMEOUT = 0.0


async def make_dead(harness: Harness, conversation_id: str, text: str = "hello") -> int:
    """Record one message and relay it into a fatal failure, at the clock's time."""
    row = await harness.record(conversation_id, text)
    harness.bus.fail_with = failing(PublishFailure.fatal("rejected"))
    await harness.relay().relay_due()
    harness.bus.fail_with = None
    return row.id


def kill(harness: Harness, outbox_id: int) -> None:
    """Put a committed row straight into dead now: states the head rule never builds
    (two dead rows in one conversation) but older data or manual fixes might."""
    row = harness.store.outbox[outbox_id]
    row.status, row.updated_at, row.last_error = OutboxStatus.DEAD, harness.clock.now(), "old"


async def relay_all(harness: Harness) -> None:
    await run_relay(harness.relay(), asyncio.Event(), once=True)


def published_texts(harness: Harness) -> list[str]:
    """The chat texts on the bus, in publishing order."""
    by_event = {row.event_id: row for row in harness.store.outbox.values()}
    return [
        json.loads(by_event[event].payload)["message"] for event in harness.published_event_ids()
    ]


async def test_dead_selector_by_death_time_is_half_open(harness: Harness) -> None:
    """died_since includes its bound, died_until excludes its own."""
    early = await make_dead(harness, "a")
    harness.clock.advance(timedelta(hours=1))
    middle = await make_dead(harness, "b")
    harness.clock.advance(timedelta(hours=1))
    await make_dead(harness, "c")

    selector = DeadSelector(died_since=T0 + timedelta(hours=1), died_until=T0 + timedelta(hours=2))
    assert [m.id for m in await list_dead(harness.uow, selector)] == [middle]
    before_middle = await list_dead(harness.uow, DeadSelector(died_until=T0 + timedelta(hours=1)))
    assert [m.id for m in before_middle] == [early]


async def test_dead_selector_with_several_ids_takes_exactly_those(harness: Harness) -> None:
    """Requeueing by a list of ids moves those dead rows and no other."""
    ids = [await make_dead(harness, conversation) for conversation in "abc"]

    moved = await requeue_dead(
        harness.uow, harness.clock, DeadSelector(outbox_ids=(ids[0], ids[2], 999))
    )

    assert moved == 2
    assert [harness.status(i) for i in ids] == [
        OutboxStatus.PENDING,
        OutboxStatus.DEAD,
        OutboxStatus.PENDING,
    ]


async def test_criteria_combine_so_every_one_must_hold(harness: Harness) -> None:
    """A conversation and a time range together select only that conversation's rows
    that died in range."""
    await make_dead(harness, "a")
    harness.clock.advance(timedelta(hours=2))
    late_a = await make_dead(harness, "a-2")
    await make_dead(harness, "b")
    selector = DeadSelector(conversation_id="a-2", died_since=T0 + timedelta(hours=1))
    assert [m.id for m in await list_dead(harness.uow, selector)] == [late_a]


async def test_requeue_all_in_tiny_batches_releases_every_conversation_in_order(
    harness: Harness,
) -> None:
    """Three conversations, each a dead head with two held messages: requeueing all, one row
    per transaction, publishes each conversation in recording order."""
    for conversation in "abc":
        await make_dead(harness, conversation, f"{conversation}0")
        for n in (1, 2):
            await harness.record(conversation, f"{conversation}{n}")
    await relay_all(harness)
    assert harness.published_event_ids() == []

    await requeue_dead(harness.uow, harness.clock, DeadSelector(), batch=1)
    await relay_all(harness)

    texts = published_texts(harness)
    for conversation in "abc":
        mine = [text for text in texts if text.startswith(conversation)]
        assert mine == [f"{conversation}{n}" for n in range(3)]


async def test_requeueing_a_later_dead_row_alone_does_not_overtake_an_earlier_dead_one(
    harness: Harness,
) -> None:
    """With two dead rows in one conversation, requeueing only the later one (by time range)
    publishes nothing; requeueing the earlier one then releases both in order."""
    first = await harness.record("a", "first")
    kill(harness, first.id)
    harness.clock.advance(timedelta(hours=1))
    second = await harness.record("a", "second")
    kill(harness, second.id)
    third = await harness.record("a", "third")

    await requeue_dead(
        harness.uow, harness.clock, DeadSelector(died_since=T0 + timedelta(minutes=30))
    )
    await relay_all(harness)
    assert harness.published_event_ids() == []
    assert harness.status(second.id) is OutboxStatus.PENDING

    await requeue_dead(harness.uow, harness.clock, DeadSelector(outbox_id=first.id))
    await relay_all(harness)
    assert harness.published_event_ids() == [first.event_id, second.event_id, third.event_id]


async def test_requeue_reports_its_running_total_after_each_batch(harness: Harness) -> None:
    """The progress callback sees the total grow a batch at a time, ending at the result."""
    for conversation in "abc":
        await make_dead(harness, conversation)
    seen: list[int] = []

    moved = await requeue_dead(harness.uow, harness.clock, DeadSelector(), 2, seen.append)

    assert moved == 3
    assert seen[:2] == [2, 3]
    assert seen[-1] == 3


@attrs.define
class AfterCommit(InMemoryUnitOfWork):
    """An in-memory unit of work that runs `then` once its commit is done."""

    then: Callable[[], Awaitable[None]] = attrs.field(kw_only=True)

    async def commit(self) -> None:
        await super().commit()
        await self.then()


@attrs.define
class RelayRekillsEachBatch:
    """A unit-of-work factory for requeue_dead with a relay racing it: after each requeue
    commit, the relay publishes what was requeued and the broker rejects it again (a fatal
    reason), before the next batch is selected. `newcomers` messages are recorded and die
    after the first commit, when the requeue has already begun."""

    harness: Harness
    newcomers: int = 0
    requeued: list[int] = attrs.field(factory=list)
    units: int = 0

    def __call__(self) -> InMemoryUnitOfWork:
        self.units += 1
        assert self.units <= 50, "requeue_dead does not end"
        return AfterCommit(self.harness.store, then=self.relay_rejects_again)

    async def relay_rejects_again(self) -> None:
        rows = self.harness.store.outbox.values()
        self.requeued += [row.id for row in rows if row.status is OutboxStatus.PENDING]
        for n in range(self.newcomers):
            await self.harness.record(f"late-{n}")
        self.newcomers = 0
        self.harness.bus.fail_with = failing(PublishFailure.fatal("rejected again"))
        await self.harness.relay().relay_due()
        self.harness.bus.fail_with = None


async def test_requeue_ends_when_a_relay_kills_each_batch_again(harness: Harness) -> None:
    """Rows dead for good, re-killed between batches, are each requeued once and then left."""
    dead = [await make_dead(harness, conversation) for conversation in "abcde"]
    racing = RelayRekillsEachBatch(harness)

    moved = await requeue_dead(racing, harness.clock, DeadSelector(), batch=2)

    assert (moved, racing.requeued) == (5, dead)
    assert all(harness.status(outbox_id) is OutboxStatus.DEAD for outbox_id in dead)


async def test_requeue_leaves_rows_that_died_after_it_started(harness: Harness) -> None:
    """Only rows already dead when the requeue began are requeued, not later arrivals."""
    dead = [await make_dead(harness, conversation) for conversation in "abc"]
    racing = RelayRekillsEachBatch(harness, newcomers=2)

    moved = await requeue_dead(racing, harness.clock, DeadSelector(), batch=1)

    assert (moved, racing.requeued) == (3, dead)


async def consumed_at(harness: Harness, conversation: str) -> int:
    row = await harness.record(conversation)
    await relay_all(harness)
    await harness.consumer().consume_batch(TIMEOUT)
    assert harness.status(row.id) is OutboxStatus.CONSUMED
    return row.id


async def test_purge_in_batches_reports_progress_and_keeps_recent_rows(harness: Harness) -> None:
    """Five old consumed rows go two at a time; the fresh consumed row stays."""
    old = [await consumed_at(harness, f"old-{n}") for n in range(5)]
    harness.clock.advance(timedelta(days=8))
    fresh = await consumed_at(harness, "fresh")
    seen: list[int] = []

    deleted = await purge_consumed(
        harness.uow, harness.clock.now() - timedelta(days=7), 2, seen.append
    )

    assert (deleted, seen) == (5, [2, 4, 5])
    assert not set(old) & set(harness.store.outbox)
    assert fresh in harness.store.outbox


async def test_the_periodic_purger_deletes_old_consumed_rows_and_stops_when_asked(
    harness: Harness,
) -> None:
    """The relay's purger removes rows consumed longer ago than the retention at once."""
    old = await consumed_at(harness, "old")
    harness.clock.advance(timedelta(days=8))
    fresh = await consumed_at(harness, "fresh")
    stopping = asyncio.Event()
    purger = asyncio.create_task(
        run_purger(
            harness.uow,
            harness.clock,
            stopping,
            retention=timedelta(days=7),
            every=timedelta(hours=1),
        )
    )
    for _ in range(100):
        if old not in harness.store.outbox:
            break
        await asyncio.sleep(0.01)
    stopping.set()
    assert await asyncio.wait_for(purger, 5) == 1
    assert fresh in harness.store.outbox


async def test_the_periodic_purger_outlives_an_unreachable_database(harness: Harness) -> None:
    """A purge that cannot commit is logged and tried again on the next round."""
    old = await consumed_at(harness, "old")
    harness.clock.advance(timedelta(days=8))
    flaky = FlakyCommits(harness.store, failures=1)
    stopping = asyncio.Event()
    purger = asyncio.create_task(
        run_purger(
            flaky,
            harness.clock,
            stopping,
            retention=timedelta(days=7),
            every=timedelta(milliseconds=10),
        )
    )
    for _ in range(100):
        if old not in harness.store.outbox:
            break
        await asyncio.sleep(0.01)
    stopping.set()
    assert await asyncio.wait_for(purger, 5) == 1
    assert flaky.refused == 1


async def test_the_periodic_purger_stops_between_batches_when_asked(harness: Harness) -> None:
    """A stop asked for during a long first purge ends it after the batch in flight."""
    old = [await consumed_at(harness, f"old-{n}") for n in range(5)]
    harness.clock.advance(timedelta(days=8))
    stopping = asyncio.Event()

    async def stop() -> None:
        stopping.set()

    def stop_after_commit() -> InMemoryUnitOfWork:
        return AfterCommit(harness.store, then=stop)

    purger = run_purger(
        stop_after_commit,
        harness.clock,
        stopping,
        retention=timedelta(days=7),
        every=timedelta(hours=1),
        batch=2,
    )
    assert await asyncio.wait_for(purger, 5) == 2
    assert sorted(set(old) & set(harness.store.outbox)) == old[2:]


class Terminal(io.StringIO):
    """A stderr stand-in that says whether it is a terminal and keeps what was written."""

    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_progress_is_drawn_on_a_terminal_and_ended_with_a_newline() -> None:
    """On a tty each total redraws the same line; closing moves to the next line."""
    terminal = Terminal(tty=True)
    progress = Progress("purge", terminal)
    progress(1000)
    progress(2000)
    progress.close()
    assert terminal.getvalue() == "\rpurge: 1000\rpurge: 2000\n"


def test_progress_writes_nothing_when_stderr_is_not_a_terminal() -> None:
    """Off a tty (pipes, logs collected as JSON) progress stays silent but still counts."""
    piped = Terminal(tty=False)
    progress = Progress("purge", piped)
    progress(5)
    progress.close()
    assert (piped.getvalue(), progress.done) == ("", 5)


def test_an_operator_action_is_audited_with_user_selector_and_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One `audit` line names the action, the selector, the count and $USER."""
    monkeypatch.setenv("USER", "alice")
    with (
        structlog.testing.capture_logs() as logs,
        audited("dead_requeue", {"conversation_id": "c"}, Terminal(tty=False)) as progress,
    ):
        progress(3)
    assert logs == [
        {
            "event": "audit",
            "log_level": "info",
            "action": "dead_requeue",
            "selector": {"conversation_id": "c"},
            "user": "alice",
            "count": 3,
            "outcome": "ok",
        }
    ]


def test_a_failed_operator_action_is_audited_with_what_it_did_before_failing() -> None:
    """A purge that dies midway still leaves an audit line, with the count so far."""

    def purge_dying_midway() -> None:
        with audited("purge", {"consumed_before": "t"}, Terminal(tty=False)) as progress:
            progress(1000)
            raise RuntimeError("connection lost")

    with structlog.testing.capture_logs() as logs, pytest.raises(RuntimeError, match="lost"):
        purge_dying_midway()
    [line] = logs
    assert (line["event"], line["outcome"], line["count"]) == ("audit", "failed", 1000)
    assert "connection lost" in line["error"]
