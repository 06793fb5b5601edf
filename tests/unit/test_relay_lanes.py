"""Relay lanes: several relay loops in one process, each with its own share."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

import attrs
import pytest

from chat_outbox.adapters.memory import InMemoryBus, InMemoryUnitOfWork
from chat_outbox.adapters.memory.claims import InMemoryLeasedClaims, InMemoryLockedClaims
from chat_outbox.application.errors import StoreUnavailable
from chat_outbox.application.ports import OutgoingRecord, PublishResult
from chat_outbox.application.relay.loop import Backlog, Polling, run_relay_lanes
from chat_outbox.application.relay.relaying import Relay, RelayReport
from chat_outbox.application.relay.sharing import RelayMembership
from chat_outbox.domain import OutboxStatus
from tests.unit.conftest import Harness

pytestmark = pytest.mark.unit


@attrs.define
class LaneBus:
    """One lane's way to the shared bus, counting what that lane sent; `turns` yields to
    the loop first, as a network round trip would."""

    bus: InMemoryBus
    turns: bool = False
    sent: int = 0

    async def publish(self, records: Sequence[OutgoingRecord]) -> list[PublishResult]:
        if self.turns:
            await asyncio.sleep(0)
        self.sent += len(records)
        return await self.bus.publish(records)


async def relay_until(harness: Harness, relays: list[Relay], published: int) -> RelayReport:
    """Run the lanes until `published` records are on the bus, then stop them."""
    stopping = asyncio.Event()
    polling = Polling(minimum=0.01, maximum=0.01, coalesce=0)
    lanes = asyncio.create_task(run_relay_lanes(relays, stopping, polling=polling))
    for _ in range(500):
        if len(harness.bus.log) >= published:
            break
        await asyncio.sleep(0.01)
    stopping.set()
    return await asyncio.wait_for(lanes, 5)


def test_the_backlog_calls_lanes_in_when_full_and_out_under_a_quarter() -> None:
    backlog = Backlog()
    backlog.saw(100, 100)
    assert backlog.full.is_set()
    backlog.saw(30, 100)  # in between: no change
    assert (backlog.full.is_set(), backlog.drained.is_set()) == (True, False)
    backlog.saw(24, 100)
    assert (backlog.full.is_set(), backlog.drained.is_set()) == (False, True)


async def test_a_backlog_brings_the_second_lane_in_and_every_message_is_relayed_once(
    harness: Harness,
) -> None:
    """Leased claims publish outside their transaction, so the in-memory store (which does
    not model overlapping transactions) can run two lanes at once; locked lanes run on the
    real databases in the integration tests."""
    rows = [await harness.record(f"c{n % 8}", f"m{n}") for n in range(40)]
    buses = [LaneBus(harness.bus, turns=True), LaneBus(harness.bus, turns=True)]
    relays = [attrs.evolve(harness.relay(batch_size=4), bus=bus) for bus in buses]
    report = await relay_until(harness, relays, published=len(rows))
    assert report.published == len(rows) == len(harness.bus.log)
    assert all(harness.status(row.id) is OutboxStatus.PUBLISHED for row in rows)
    assert all(bus.sent > 0 for bus in buses)


async def test_with_once_a_backlog_is_drained_by_both_lanes_and_the_call_returns(
    harness: Harness,
) -> None:
    """`relay --once`: the second lane joins on a full batch as in a long run, and the
    call ends by itself once neither lane finds anything due."""
    rows = [await harness.record(f"c{n % 8}", f"m{n}") for n in range(40)]
    buses = [LaneBus(harness.bus, turns=True), LaneBus(harness.bus, turns=True)]
    relays = [attrs.evolve(harness.relay(batch_size=4), bus=bus) for bus in buses]
    polling = Polling(minimum=60, maximum=60, coalesce=0)
    report = await asyncio.wait_for(
        run_relay_lanes(relays, asyncio.Event(), polling=polling, once=True), 5
    )
    assert report.published == len(rows) == len(harness.bus.log)
    assert all(harness.status(row.id) is OutboxStatus.PUBLISHED for row in rows)
    assert all(bus.sent > 0 for bus in buses)


async def test_a_trickle_is_relayed_by_the_first_lane_alone(harness: Harness) -> None:
    """Batches short of full never call the other lanes in (nor onto the roster)."""
    rows = [await harness.record(f"c{n}", "m") for n in range(3)]
    buses = [LaneBus(harness.bus), LaneBus(harness.bus)]
    membership = RelayMembership(harness.uow, harness.clock, "process", refresh=timedelta(0))
    relays = [
        Relay(
            InMemoryLockedClaims(harness.uow, membership.lane()), bus, harness.clock, batch_size=4
        )
        for bus in buses
    ]
    report = await relay_until(harness, relays, published=len(rows))
    assert report.published == len(rows)
    assert [bus.sent for bus in buses] == [3, 0]
    assert harness.store.relays == {}


async def test_a_lane_that_crashes_stops_the_other_lanes(harness: Harness) -> None:
    """A crash is not waited out like an outage: the process exits, its lanes with it. Here
    the second lane, called in by a full batch, crashes while the first idles."""
    for n in range(3):
        await harness.record(f"c{n}", "m")
    healthy = attrs.evolve(harness.relay(batch_size=1), bus=LaneBus(harness.bus, turns=True))
    broken = attrs.evolve(harness.relay(), claims=InMemoryLeasedClaims(_crash, timedelta(60)))
    stopping = asyncio.Event()
    with pytest.raises(ExceptionGroup) as raised:
        await asyncio.wait_for(
            run_relay_lanes([healthy, broken], stopping, polling=Polling(minimum=60, maximum=60)),
            5,
        )
    assert raised.group_contains(RuntimeError, match="schema is gone")
    assert not raised.group_contains(StoreUnavailable)


def _crash() -> InMemoryUnitOfWork:
    raise RuntimeError("schema is gone")
