"""Relays that lock their claims share the conversations between them: each claims only
the conversations whose key hashes to its own shard, so one relay's claim never has to
step over another's rows. Who is alive comes from a roster each relay refreshes while it
works; a relay that stops refreshing drops out and the others cover its share."""

from __future__ import annotations

from datetime import datetime, timedelta

import attrs
import structlog

from chat_outbox.application.ports import EVERY_CONVERSATION, Clock, Shard, UnitOfWorkFactory

log = structlog.get_logger(__name__)


@attrs.define
class Neighbours:
    """What the lanes of one process tell each other: `changes` counts the joins and
    departures among them, so the others re-read the roster at their next claim instead of
    up to a refresh later, and a lane called in for a backlog gets its share at once."""

    changes: int = 0


@attrs.define
class RelayShares:
    uow: UnitOfWorkFactory
    clock: Clock
    member: str
    neighbours: Neighbours = attrs.field(factory=Neighbours)
    refresh: timedelta = timedelta(seconds=0.25)
    """How often the roster is refreshed (at most once per claim). Until every relay has
    seen a newcomer, the shares overlap and claims step over each other's rows: at a
    quarter second, only a 2-relay drain's first batch or two run part full."""
    alive_for: timedelta = timedelta(seconds=5)
    """How long a member counts as alive after its last refresh."""
    _shard: Shard = attrs.field(default=EVERY_CONVERSATION, init=False)
    _next_refresh: datetime | None = attrs.field(default=None, init=False)
    _seen: int = attrs.field(default=0, init=False)

    async def shard(self) -> Shard:
        """This relay's shard, refreshing its roster entry when due or when a neighbour
        came or went."""
        now, due = self.clock.now(), self._next_refresh
        if due is not None and now < due and self._seen == self.neighbours.changes:
            return self._shard
        joining = due is None
        async with self.uow() as uow:
            members = await uow.relays.beat(self.member, now, now + self.alive_for)
            await uow.commit()
        if joining:
            self.neighbours.changes += 1
        self._seen = self.neighbours.changes
        shard = Shard(members.index(self.member), len(members))
        if shard != self._shard:
            log.info("relay_shard_changed", member=self.member, shard=shard.index, of=shard.count)
        self._shard = shard
        self._next_refresh = now + self.refresh
        return shard

    async def leave(self) -> None:
        """Drop out of the roster, so the others take this relay's share at their next
        refresh instead of after `alive_for`."""
        async with self.uow() as uow:
            await uow.relays.leave(self.member)
            await uow.commit()
        self.neighbours.changes += 1
        self._shard, self._next_refresh = EVERY_CONVERSATION, None
