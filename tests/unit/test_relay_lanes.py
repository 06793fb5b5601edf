"""Relay lanes: several relay loops in one process, each with its own share."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

import attrs
import pytest

from adapters.memory import InMemoryBus
from adapters.wakeups import LocalWakeups, NoWakeups
from application.errors import StoreUnavailable
from application.ports import OutgoingRecord, PublishResult, UnitOfWork
from application.relay_loop import Polling, run_relay_lanes
from application.relaying import Relay
from application.sharing import RelayShares
from domain import OutboxStatus
from tests.unit.conftest import Harness

pytestmark = pytest.mark.unit


@attrs.define
class LaneBus:
    """One lane's way to the shared bus, counting what that lane sent. It does not yield
    to the loop: the in-memory store does not model overlapping transactions (lanes
    publishing at once are tested on the real databases)."""

    bus: InMemoryBus
    sent: int = 0

    async def publish(self, records: Sequence[OutgoingRecord]) -> list[PublishResult]:
        self.sent += len(records)
        return await self.bus.publish(records)


def lanes(harness: Harness, buses: Sequence[LaneBus]) -> list[Relay]:
    return [
        Relay(
            harness.uow,
            bus,
            harness.clock,
            lease=None,
            batch_size=4,
            shares=RelayShares(harness.uow, harness.clock, f"lane-{n}", refresh=timedelta(0)),
        )
        for n, bus in enumerate(buses)
    ]


async def test_lanes_split_the_conversations_relay_every_message_once_and_leave(
    harness: Harness,
) -> None:
    rows = [await harness.record(f"c{n % 8}", f"m{n}") for n in range(40)]
    buses = [LaneBus(harness.bus), LaneBus(harness.bus)]
    relays = lanes(harness, buses)
    for relay in relays:  # both on the roster before either claims
        assert relay.shares is not None
        await relay.shares.shard()
    report = await run_relay_lanes(relays, asyncio.Event(), once=True)
    assert report.published == len(rows) == len(harness.bus.log)
    assert all(harness.status(row.id) is OutboxStatus.PUBLISHED for row in rows)
    assert all(bus.sent > 0 for bus in buses)
    assert harness.store.relays == {}


async def test_one_wakeup_wakes_every_lane() -> None:
    leader = LocalWakeups()
    follower = leader.follower()
    waits = [asyncio.create_task(w.wait(5)) for w in (leader, follower)]
    await asyncio.sleep(0)
    leader.notify()
    assert await asyncio.gather(*waits) == [True, True]


async def test_a_wakeup_while_a_lane_is_busy_is_kept_for_its_next_wait() -> None:
    leader = LocalWakeups()
    follower = leader.follower()
    leader.notify()
    assert await follower.wait(0) is True
    assert await follower.wait(0) is False


def test_polling_only_lanes_share_the_one_polling_waiter() -> None:
    polling = NoWakeups()
    assert polling.follower() is polling


async def test_a_lane_that_crashes_stops_the_other_lanes(harness: Harness) -> None:
    """A crash is not waited out like an outage: the process exits, its lanes with it."""
    await harness.record("c1", "m")
    healthy = harness.relay()
    broken = attrs.evolve(harness.relay(), uow=_crash)
    stopping = asyncio.Event()
    with pytest.raises(ExceptionGroup) as raised:
        await asyncio.wait_for(
            run_relay_lanes([healthy, broken], stopping, polling=Polling(minimum=60, maximum=60)),
            5,
        )
    assert raised.group_contains(RuntimeError, match="schema is gone")
    assert not raised.group_contains(StoreUnavailable)


def _crash() -> UnitOfWork:
    raise RuntimeError("schema is gone")
