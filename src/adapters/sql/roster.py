"""The relays' roster on SQLAlchemy Core: one row per live relay."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from chat_outbox.adapters.sql.tables import relay_members as r
from chat_outbox.application.ports import RelayRoster


class SqlRelayRoster(RelayRoster):
    def __init__(self, connection: AsyncConnection) -> None:
        self._conn = connection

    async def beat(self, member: str, now: datetime, alive_until: datetime) -> list[str]:
        # UPDATE, then INSERT when the row is new: portable, and the row exists only while
        # this relay is alive, so two relays never insert one member id.
        refreshed = await self._conn.execute(
            update(r).where(r.c.member_id == member).values(alive_until=alive_until)
        )
        if refreshed.rowcount == 0:
            await self._conn.execute(insert(r).values(member_id=member, alive_until=alive_until))
        await self._conn.execute(delete(r).where(r.c.alive_until <= now))
        alive = select(r.c.member_id).order_by(r.c.member_id)
        return list((await self._conn.execute(alive)).scalars())

    async def leave(self, member: str) -> None:
        await self._conn.execute(delete(r).where(r.c.member_id == member))
