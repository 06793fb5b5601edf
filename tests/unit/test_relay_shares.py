"""Locking relays share the conversations out by a roster of live relays."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import attrs
import pytest

from chat_outbox.adapters.memory.claims import InMemoryLockedClaims
from chat_outbox.application.relay.loop import run_relay
from chat_outbox.application.relay.sharing import RelayMembership, RelayShares
from chat_outbox.domain import OutboxStatus
from tests.unit.conftest import Harness

pytestmark = pytest.mark.unit

ALIVE = timedelta(seconds=5)


def member(harness: Harness, name: str, refresh: timedelta = timedelta(0)) -> RelayMembership:
    return RelayMembership(harness.uow, harness.clock, name, refresh=refresh, alive_for=ALIVE)


def shares(harness: Harness, name: str, refresh: timedelta = timedelta(0)) -> RelayShares:
    """A relay process with one lane."""
    return member(harness, name, refresh).lane()


async def test_relays_on_one_roster_take_distinct_shards(harness: Harness) -> None:
    a, b = shares(harness, "a"), shares(harness, "b")
    assert (await a.shard()).count == 1
    await b.shard()
    assert [(s.index, s.count) for s in (await a.shard(), await b.shard())] == [(0, 2), (1, 2)]


async def test_a_relay_that_stops_refreshing_drops_out_and_its_share_is_taken_over(
    harness: Harness,
) -> None:
    a, b = shares(harness, "a"), shares(harness, "b")
    await a.shard()
    await b.shard()
    harness.clock.advance(ALIVE)
    assert (await b.shard()).count == 1
    assert sorted(harness.store.relays) == ["b"]


async def test_a_relay_that_leaves_hands_its_share_over_at_the_next_refresh(
    harness: Harness,
) -> None:
    a, b = shares(harness, "a"), shares(harness, "b")
    await a.shard()
    await b.shard()
    await a.leave()
    assert (await b.shard()).count == 1


async def test_the_roster_is_refreshed_at_most_once_per_interval(harness: Harness) -> None:
    a = shares(harness, "a", refresh=timedelta(seconds=1))
    for _ in range(3):
        await a.shard()
    assert harness.store.commits == 1
    harness.clock.advance(timedelta(seconds=1))
    await a.shard()
    assert harness.store.commits == 2


async def test_a_relay_in_another_process_sees_a_newcomer_only_at_its_next_refresh(
    harness: Harness,
) -> None:
    a = shares(harness, "a", refresh=timedelta(hours=1))
    await a.shard()
    await shares(harness, "b").shard()
    assert (await a.shard()).count == 1


async def test_a_lane_of_the_same_process_is_given_its_share_at_once(harness: Harness) -> None:
    """A process is one member: its lanes split its share between them with no roster
    write, and a leaving lane's part goes back to the others at their next claim."""
    process = member(harness, "a", refresh=timedelta(hours=1))
    first, second = process.lane(), process.lane()
    assert (await first.shard()).count == 1
    assert [(s.index, s.count) for s in (await second.shard(), await first.shard())] == [
        (1, 2),
        (0, 2),
    ]
    await second.leave()
    assert (await first.shard()).count == 1
    assert harness.store.commits == 1  # the first lane's beat, nothing since
    assert sorted(harness.store.relays) == ["a"]


async def test_lanes_split_their_member_s_share_and_no_other_member_s(harness: Harness) -> None:
    """Of two members, the one with two lanes covers exactly its half with them."""
    process, other = member(harness, "a"), shares(harness, "b")
    lanes = [process.lane(), process.lane()]
    for lane in (*lanes, other):
        await lane.shard()  # each joins
    split = [await lane.shard() for lane in lanes]
    theirs = await other.shard()
    assert [(s.index, s.count) for s in split] == [(0, 4), (2, 4)]
    assert (theirs.index, theirs.count) == (1, 2)
    for key_hash in range(64):
        owners = [s for s in (*split, theirs) if key_hash % s.count == s.index]
        assert len(owners) == 1


async def test_the_member_leaves_the_roster_with_its_last_lane(harness: Harness) -> None:
    process = member(harness, "a")
    first, second = process.lane(), process.lane()
    await first.shard()
    await second.shard()
    await first.leave()
    assert sorted(harness.store.relays) == ["a"]
    await second.leave()
    assert harness.store.relays == {}


async def test_a_sharing_relay_claims_only_its_share_and_leaves_the_roster_on_exit(
    harness: Harness,
) -> None:
    rows = [await harness.record(f"c{n % 8}", f"m{n}") for n in range(32)]
    other = shares(harness, "a")
    await other.shard()  # another relay is alive, and never claims here
    claims = InMemoryLockedClaims(harness.uow, shares(harness, "b"))
    relay = attrs.evolve(harness.relay(lease=None), claims=claims)
    report = await run_relay(relay, asyncio.Event(), once=True)
    published = [row for row in rows if harness.status(row.id) is OutboxStatus.PUBLISHED]
    assert 0 < report.published == len(published) < len(rows)
    mine = {row.message_key for row in published}
    assert all(
        harness.status(row.id) is OutboxStatus.PENDING
        for row in rows
        if row.message_key not in mine
    )
    assert sorted(harness.store.relays) == ["a"]
