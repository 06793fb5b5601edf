"""A host's event registry, loaded by `relay` and `consume` processes with `--handlers
tests.integration.event_registry:events`: one type whose handler notes each event in a
host table."""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table, insert
from sqlalchemy.ext.asyncio import AsyncSession

from chat_outbox import Event, EventRegistry, EventType

NOTED = EventType("audit.noted")
host = MetaData()
host_notes = Table(
    "host_event_notes",
    host,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("note_key", String(128), nullable=False),
    Column("note", String(200), nullable=False),
)

events = EventRegistry()
events.register(NOTED)


@events.handler(NOTED.name)
async def note(event: Event, session: AsyncSession) -> None:
    await session.execute(insert(host_notes).values(note_key=event.key, note=event.payload["note"]))
