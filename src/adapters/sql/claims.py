"""The claim strategies on SQL: leased heads (every database) and row-locked runs held
through the publish (PostgreSQL, MariaDB), which relays may share out by conversation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import attrs
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from chat_outbox.adapters.sql.outbox import CHUNK
from chat_outbox.adapters.sql.rows import message_of
from chat_outbox.adapters.sql.statements import (
    CLAIM_PLAN,
    LEASE_HEADS,
    LEASE_IDS,
    LOCK_HEADS,
    LOCK_RUNS,
    RELEASE_LEASE,
    lock_runs_of_shard,
)
from chat_outbox.adapters.sql.uow import SqlUnitOfWork, SqlUnitOfWorkFactory
from chat_outbox.application.ports import (
    EVERY_CONVERSATION,
    ClaimedBatch,
    Clock,
    OutboxClaims,
    Shard,
)
from chat_outbox.application.relay.relaying import is_trickle
from chat_outbox.application.relay.sharing import RelayShares
from chat_outbox.domain import OutboxMessage, Transition

log = structlog.get_logger(__name__)


class LeasedClaims(OutboxClaims):
    """Claims conversation heads, one row per conversation, and leases them: next_retry_at
    moves to now + lease, hiding them from other relays until then (a crashed relay's
    rows come back when its lease runs out). One commit per batch: a batch's settle
    writes its outcomes and claims the next batch in one transaction, and the next claim
    takes that batch. Not after a trickle's batch: the loop paces the next round, and rows
    claimed now would sit out that pause before their publish. Outcomes a failed settle
    could not write go with the next claim."""

    def __init__(self, uow: SqlUnitOfWorkFactory, clock: Clock, lease: timedelta) -> None:
        self._uow = uow
        self._clock = clock
        self._lease = lease
        self._limit = 0
        self._ahead: list[OutboxMessage] = []
        self._unwritten: Sequence[Transition] = ()

    @asynccontextmanager
    async def claim(self, now: datetime, limit: int) -> AsyncIterator[ClaimedBatch]:
        self._limit = limit
        claimed, self._ahead = self._ahead, []
        if not claimed:
            async with self._uow() as uow:
                await self._write_unwritten(uow)
                claimed = await lease_heads(uow.connection, now, limit, self._lease)
                await uow.commit()
            self._unwritten = ()
        yield _LeasedBatch(self, claimed)

    async def _settle(self, claimed: int, transitions: Sequence[Transition]) -> int:
        self._unwritten = transitions  # until the transaction that writes them commits
        ahead: list[OutboxMessage] = []
        async with self._uow() as uow:
            changed = await uow.outbox.apply(transitions)
            if not is_trickle(claimed, self._limit):
                now = self._clock.now()
                ahead = await lease_heads(uow.connection, now, self._limit, self._lease)
            await uow.commit()
        self._ahead, self._unwritten = ahead, ()
        return changed

    async def _write_unwritten(self, uow: SqlUnitOfWork) -> None:
        if self._unwritten:
            changed = await uow.outbox.apply(self._unwritten)
            log.warning("relay_outcomes_written_late", rows=len(self._unwritten), changed=changed)

    async def stop(self) -> None:
        if not (self._ahead or self._unwritten):
            return
        async with self._uow() as uow:
            await self._write_unwritten(uow)
            await release_leases(uow.connection, self._ahead, self._clock.now())
            await uow.commit()
        self._ahead, self._unwritten = [], ()


@attrs.frozen
class _LeasedBatch(ClaimedBatch):
    claims: LeasedClaims
    messages: Sequence[OutboxMessage]

    async def settle(self, transitions: Sequence[Transition]) -> int:
        return await self.claims._settle(len(self.messages), transitions)


class LockedClaims(OutboxClaims):
    """Locks due runs of rows (FOR UPDATE SKIP LOCKED) in a transaction held open through
    the publish and ended by the settle: one statement fewer per batch than a lease, and
    a crashed relay's rows free at once (the database ends a hung relay's transaction,
    idle_in_transaction_session_timeout). With `shares`, each relay claims only its share
    of the conversations, so one relay's claim never steps over another's rows."""

    def __init__(self, uow: SqlUnitOfWorkFactory, shares: RelayShares | None = None) -> None:
        self._uow = uow
        self._shares = shares

    @asynccontextmanager
    async def claim(self, now: datetime, limit: int) -> AsyncIterator[ClaimedBatch]:
        shard = await self._shares.shard() if self._shares else EVERY_CONVERSATION
        async with self._uow() as uow:
            yield _LockedBatch(uow, await lock_runs(uow.connection, now, limit, shard))

    async def stop(self) -> None:
        if self._shares is not None:
            await self._shares.leave()


@attrs.frozen
class _LockedBatch(ClaimedBatch):
    uow: SqlUnitOfWork
    messages: Sequence[OutboxMessage]

    async def settle(self, transitions: Sequence[Transition]) -> int:
        changed = await self.uow.outbox.apply(transitions)
        await self.uow.commit()
        return changed


async def lease_heads(
    conn: AsyncConnection, now: datetime, limit: int, lease: timedelta
) -> list[OutboxMessage]:
    """Lease up to `limit` due conversation heads until now + lease, in id order."""
    dialect = conn.dialect.name
    params: dict[str, Any] = {"now": now, "limit": limit}
    if dialect == "postgresql":
        await conn.execute(CLAIM_PLAN)
    lease_until = now + lease
    if dialect in LEASE_HEADS:
        params["lease_until"] = lease_until
        rows = (await conn.execute(LEASE_HEADS[dialect], params)).all()
        return sorted((message_of(row) for row in rows), key=lambda message: message.id)
    rows = (await conn.execute(LOCK_HEADS, params)).all()
    ids = [row.id for row in rows]
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        await conn.execute(LEASE_IDS, {"ids": chunk, "lease_until": lease_until})
    return [message_of(row, next_retry_at=lease_until) for row in rows]


async def release_leases(
    conn: AsyncConnection, leased: Sequence[OutboxMessage], now: datetime
) -> None:
    """Make leased rows due at `now` again, unless another write has moved them since."""
    for lease_until in {message.next_retry_at for message in leased}:
        ids = [message.id for message in leased if message.next_retry_at == lease_until]
        for start in range(0, len(ids), CHUNK):
            params = {"ids": ids[start : start + CHUNK], "lease_until": lease_until, "now": now}
            await conn.execute(RELEASE_LEASE, params)


async def lock_runs(
    conn: AsyncConnection, now: datetime, limit: int, shard: Shard = EVERY_CONVERSATION
) -> list[OutboxMessage]:
    """Lock up to `limit` due rows of `shard`, in id order: each conversation's run of due
    rows from its head, cut where another relay holds a row (skipped as locked)."""
    dialect = conn.dialect.name
    params: dict[str, Any] = {"now": now, "limit": limit}
    if dialect == "postgresql":
        await conn.execute(CLAIM_PLAN)
    claim = LOCK_RUNS
    if shard.count > 1:
        claim = lock_runs_of_shard(dialect)
        params.update(shard_index=shard.index, shard_count=shard.count)
    kept: set[int] = set()
    claimed: list[OutboxMessage] = []
    for row in await conn.execute(claim, params):
        if row.previous is None or row.previous in kept:
            kept.add(row.id)
            claimed.append(message_of(row[:-1]))
    return claimed


async def open_lanes(uow: SqlUnitOfWorkFactory, clock: Clock, lanes: int) -> None:
    """Open a connection for each of `lanes` locking relays and prepare the claims on it
    (the pool keeps both): otherwise a lane called in by a backlog would do that in its
    first claim, under the backlog's load."""

    async def open_lane() -> None:
        async with uow() as unit:
            now = clock.now()
            await lock_runs(unit.connection, now, 0)
            await lock_runs(unit.connection, now, 0, Shard(0, 2))

    await asyncio.gather(*(open_lane() for _ in range(lanes)))
