"""The relay loop: wake-ups, adaptive polling, stopping, and the stale-published sweeper."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import attrs
import pytest

from chat_outbox.adapters.wakeups import LocalWakeups
from chat_outbox.application.ports import Wakeups
from chat_outbox.application.record.recording import RecordChatMessage
from chat_outbox.application.relay.loop import Polling, run_relay, run_sweeper
from chat_outbox.domain import OutboxStatus
from tests.unit.conftest import TOPIC, Harness, chat

pytestmark = pytest.mark.unit


@attrs.define
class CountingWakeups(Wakeups):
    """Never woken; records each timeout it was asked to wait, and stops the loop after
    `stop_after` waits."""

    stopping: asyncio.Event
    stop_after: int
    timeouts: list[float] = attrs.field(factory=list)

    async def wait(self, timeout: float) -> bool:
        self.timeouts.append(timeout)
        if len(self.timeouts) >= self.stop_after:
            self.stopping.set()
        return False


async def test_a_recording_in_the_same_process_wakes_the_idle_relay(harness: Harness) -> None:
    """With a 60 s poll, a message recorded through the use case is relayed at once."""
    wakeups = LocalWakeups()
    stopping = asyncio.Event()
    loop = asyncio.create_task(
        run_relay(
            harness.relay(),
            stopping,
            wakeups=wakeups,
            polling=Polling(minimum=60, maximum=60, coalesce=0),
        )
    )
    await asyncio.sleep(0.05)  # let the relay find nothing and go idle
    record = RecordChatMessage(
        harness.uow, harness.clock, harness.event_ids, TOPIC, on_recorded=wakeups.notify
    )
    recorded = await record(chat("woken", "hi"))
    for _ in range(100):
        if harness.status(recorded.id) is OutboxStatus.PUBLISHED:
            break
        await asyncio.sleep(0.01)
    stopping.set()
    await asyncio.wait_for(loop, 5)
    assert harness.status(recorded.id) is OutboxStatus.PUBLISHED


async def test_an_idle_relay_backs_off_its_polling_up_to_the_maximum(harness: Harness) -> None:
    """Each empty round doubles the wait, from the minimum up to the maximum."""
    stopping = asyncio.Event()
    wakeups = CountingWakeups(stopping, stop_after=6)
    await run_relay(
        harness.relay(),
        stopping,
        wakeups=wakeups,
        polling=Polling(minimum=0.1, maximum=0.5, coalesce=0),
    )
    assert wakeups.timeouts == [0.1, 0.2, 0.4, 0.5, 0.5, 0.5]


async def test_work_found_resets_the_polling_interval(harness: Harness) -> None:
    """After a round that relayed something, the next idle wait is the minimum again."""
    stopping = asyncio.Event()
    wakeups = CountingWakeups(stopping, stop_after=4)

    class RecordOnThirdWait(Wakeups):
        async def wait(self, timeout: float) -> bool:
            if len(wakeups.timeouts) == 2:
                await harness.record("late")
            return await wakeups.wait(timeout)

    await run_relay(
        harness.relay(),
        stopping,
        wakeups=RecordOnThirdWait(),
        polling=Polling(minimum=0.1, maximum=1.0, coalesce=0),
    )
    assert wakeups.timeouts == [0.1, 0.2, 0.4, 0.1]


async def test_once_drains_everything_due_including_rows_released_behind_a_batch(
    harness: Harness,
) -> None:
    """`--once` keeps claiming until nothing is due, so a conversation longer than one batch
    is published completely, in order."""
    rows = [await harness.record("long", f"m{n}") for n in range(7)]
    report = await run_relay(harness.relay(batch_size=3), asyncio.Event(), once=True)
    assert report.published == 7
    assert harness.published_event_ids() == [row.event_id for row in rows]


async def test_the_sweeper_returns_stale_published_rows_to_pending(harness: Harness) -> None:
    """A row published longer ago than the staleness age goes back to pending; a fresh one
    stays published."""
    stale = await harness.record("a")
    await harness.relay().relay_due()
    harness.clock.advance(timedelta(minutes=10))
    fresh = await harness.record("b")
    await harness.relay().relay_due()
    stopping = asyncio.Event()
    sweeper = asyncio.create_task(
        run_sweeper(harness.uow, harness.clock, stopping, stale_after=timedelta(seconds=2))
    )
    for _ in range(200):
        if harness.status(stale.id) is OutboxStatus.PENDING:
            break
        await asyncio.sleep(0.01)
    stopping.set()
    assert await asyncio.wait_for(sweeper, 5) == 1
    assert (harness.status(stale.id), harness.status(fresh.id)) == (
        OutboxStatus.PENDING,
        OutboxStatus.PUBLISHED,
    )


async def bus_holds(harness: Harness, count: int, within: float) -> bool:
    for _ in range(int(within / 0.01)):
        if len(harness.bus.log) >= count:
            return True
        await asyncio.sleep(0.01)
    return len(harness.bus.log) >= count


@pytest.mark.parametrize("lease", [None, timedelta(seconds=60)], ids=["locking", "leasing"])
async def test_at_a_trickle_the_next_round_waits_for_the_pace(
    harness: Harness, lease: timedelta | None
) -> None:
    """After a round of a few rows, a message recorded meanwhile, wake-up and all, waits
    until the pace (60 s here) is up: rounds of a few rows do not run back to back."""
    await harness.record("a")
    stopping, wakeups = asyncio.Event(), LocalWakeups()
    polling = Polling(minimum=60, maximum=60, coalesce=0, pace=60)
    relay = harness.relay(lease=lease)
    loop = asyncio.create_task(run_relay(relay, stopping, polling=polling, wakeups=wakeups))
    assert await bus_holds(harness, 1, within=2)
    await harness.record("b")
    wakeups.notify()
    assert not await bus_holds(harness, 2, within=0.3)
    stopping.set()
    await asyncio.wait_for(loop, 5)


@pytest.mark.parametrize("lease", [None, timedelta(seconds=60)], ids=["locking", "leasing"])
async def test_a_backlog_is_relayed_back_to_back_whatever_the_pace(
    harness: Harness, lease: timedelta | None
) -> None:
    """Full batches are not paced: six rows in batches of two go out at once although
    the pace is 60 s."""
    for conversation in "abcdef":
        await harness.record(conversation)
    stopping = asyncio.Event()
    polling = Polling(minimum=60, maximum=60, coalesce=0, pace=60)
    relay = harness.relay(batch_size=2, lease=lease)
    loop = asyncio.create_task(run_relay(relay, stopping, polling=polling))
    assert await bus_holds(harness, 6, within=2)
    stopping.set()
    await asyncio.wait_for(loop, 5)
