"""Host handlers for event types besides chat, each run inside the transaction that records
its event id in the inbox and marks its outbox row consumed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

import attrs
from sqlalchemy import exists, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from chat_outbox.adapters.sql.engine import is_transient
from chat_outbox.adapters.sql.tables import event_inbox
from chat_outbox.adapters.sql.tables import outbox_messages as t
from chat_outbox.adapters.sql.uow import SqlUnitOfWork, SqlUnitOfWorkFactory
from chat_outbox.application.errors import PermanentHandlerError
from chat_outbox.application.ports.handlers import Handled, HandlerFailed, Outcome
from chat_outbox.domain import Event, EventType, InvalidEvent, OutboxStatus, consumed, swept
from chat_outbox.domain.envelope import EventEnvelope
from chat_outbox.domain.outbox import handler_failed

Handler = Callable[[Event, AsyncSession], Awaitable[None]]
"""A host's handler: its writes through `session` commit with the event's consumed mark."""


@attrs.frozen
class SqlEventHandlers:
    uow: SqlUnitOfWorkFactory
    handlers: Mapping[str, Handler]
    types: Mapping[str, EventType] = attrs.field(factory=dict)
    """The registered types, whose validators check a payload before its handler runs."""

    def knows(self, event_type: str) -> bool:
        return event_type in self.handlers

    async def handle(self, envelope: EventEnvelope, at: datetime) -> Handled:
        kind = self.types.get(envelope.type)
        if kind is not None:
            try:  # the rules it was recorded under: a record on the bus may come from anywhere
                kind.payload_text(envelope.payload)
            except InvalidEvent as error:
                raise HandlerFailed(f"invalid_payload: {error}", permanent=True) from None
        async with self.uow() as unit:
            connection = unit.connection
            if await _in_inbox(connection, envelope.event_id):
                return Handled(Outcome.DUPLICATE)
            refused = await _refusal(unit, envelope)
            if refused is not None:
                return Handled(Outcome.REFUSED, refused)
            if await _behind_a_dead_row(connection, envelope):
                await unit.outbox.apply([swept(envelope.outbox_id, at)])
                await unit.commit()
                return Handled(Outcome.HELD)
            try:
                await connection.execute(
                    insert(event_inbox).values(
                        event_id=envelope.event_id,
                        event_type=envelope.type,
                        outbox_id=envelope.outbox_id,
                        handled_at=at,
                    )
                )
            except IntegrityError:  # another consumer handled it meanwhile
                return Handled(Outcome.DUPLICATE)
            await self._run(connection, envelope)
            await unit.outbox.apply([consumed(envelope.outbox_id, at)])
            await unit.commit()
        return Handled(Outcome.HANDLED)

    async def fail(self, envelope: EventEnvelope, reason: str, at: datetime) -> None:
        async with self.uow() as unit:
            if await _refusal(unit, envelope) is None:
                await unit.outbox.apply([handler_failed(envelope.outbox_id, at, reason)])
                await unit.commit()

    async def _run(self, connection: AsyncConnection, envelope: EventEnvelope) -> None:
        """The handler, in the unit of work's transaction: a session joined to it that can
        flush but never commit it (it is committed with the consumed mark, or rolled back)."""
        session = AsyncSession(bind=connection, join_transaction_mode="rollback_only")
        try:
            await self.handlers[envelope.type](envelope.event, session)
            await session.flush()
        except PermanentHandlerError as error:
            raise HandlerFailed(f"{error}"[:400], permanent=True) from error
        except Exception as error:
            if is_transient(error):
                raise  # the database, not the handler: the unit of work says unavailable
            raise HandlerFailed(
                f"{type(error).__name__}: {error}"[:400], permanent=False
            ) from error
        finally:
            await session.close()


async def _in_inbox(connection: AsyncConnection, event_id: str) -> bool:
    query = select(exists().where(event_inbox.c.event_id == event_id))
    return bool((await connection.execute(query)).scalar_one())


async def _refusal(unit: SqlUnitOfWork, envelope: EventEnvelope) -> str | None:
    rows = await unit.outbox.provenances([envelope.outbox_id])
    return envelope.provenance.mismatch(rows.get(envelope.outbox_id))


async def _behind_a_dead_row(connection: AsyncConnection, envelope: EventEnvelope) -> bool:
    query = select(
        exists().where(
            t.c.message_key == envelope.key,
            t.c.status == OutboxStatus.DEAD.value,
            t.c.id < envelope.outbox_id,
        )
    )
    return bool((await connection.execute(query)).scalar_one())
