"""Relays that lock their claims share the conversations between them: each claims only
the conversations whose key hashes to its own shard, so one relay's claim never has to
step over another's rows. Who is alive comes from a roster each relay refreshes while it
works; a relay that stops refreshing drops out and the others cover its share. A relay
process is one member however many lanes it runs, and splits its share between its lanes
itself: a lane joins or leaves with no roster write, and the others see it at once."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import attrs
import structlog

from chat_outbox.application.ports import EVERY_CONVERSATION, Clock, Shard, UnitOfWorkFactory

log = structlog.get_logger(__name__)


@attrs.define(eq=False)
class RelayMembership:
    """A relay process's entry in the roster, and its lanes (in the order they joined).
    Of `count` members, the one at `index` owns the conversations whose key hashes to
    `index` modulo `count`; its lane `j` of `k` takes those whose hash is `index + count * j`
    modulo `count * k`, a split of exactly that share, whatever lanes other members run."""

    uow: UnitOfWorkFactory
    clock: Clock
    member: str
    refresh: timedelta = timedelta(seconds=0.25)
    """How often the roster is refreshed (at most once per claim). Until every relay has
    seen a newcomer, the shares overlap and claims step over each other's rows: at a
    quarter second, only a 2-relay drain's first batch or two run part full."""
    alive_for: timedelta = timedelta(seconds=5)
    """How long a member counts as alive after its last refresh."""
    _shard: Shard = attrs.field(default=EVERY_CONVERSATION, init=False)
    _next_refresh: datetime | None = attrs.field(default=None, init=False)
    _lanes: list[RelayShares] = attrs.field(factory=list, init=False)
    _beating: asyncio.Lock = attrs.field(factory=asyncio.Lock, init=False)

    def lane(self) -> RelayShares:
        """A lane's view of this member's share, for one relay's claims."""
        return RelayShares(self)

    async def shard_of(self, lane: RelayShares) -> Shard:
        """`lane`'s part of this member's shard, refreshing the roster entry when due."""
        if lane not in self._lanes:
            self._lanes.append(lane)
        async with self._beating:  # lanes refreshing at once: one beat does for both
            mine = await self._refreshed()
        lanes = len(self._lanes)
        return Shard(mine.index + mine.count * self._lanes.index(lane), mine.count * lanes)

    async def leave(self, lane: RelayShares) -> None:
        """`lane` stops; the last one to go takes the member off the roster, so the others
        take its share at their next refresh instead of after `alive_for`."""
        if lane in self._lanes:
            self._lanes.remove(lane)
        if self._lanes or self._next_refresh is None:
            return
        async with self.uow() as uow:
            await uow.relays.leave(self.member)
            await uow.commit()
        self._shard, self._next_refresh = EVERY_CONVERSATION, None

    async def _refreshed(self) -> Shard:
        now = self.clock.now()
        if self._next_refresh is not None and now < self._next_refresh:
            return self._shard
        async with self.uow() as uow:
            members = await uow.relays.beat(self.member, now, now + self.alive_for)
            await uow.commit()
        shard = Shard(members.index(self.member), len(members))
        if shard != self._shard:
            log.info("relay_shard_changed", member=self.member, shard=shard.index, of=shard.count)
        self._shard = shard
        self._next_refresh = now + self.refresh
        return shard


@attrs.define(eq=False)
class RelayShares:
    """What one relay's claims ask: which conversations are theirs now."""

    membership: RelayMembership

    async def shard(self) -> Shard:
        return await self.membership.shard_of(self)

    async def leave(self) -> None:
        await self.membership.leave(self)
