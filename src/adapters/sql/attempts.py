"""The outbox journal on SQLAlchemy Core: written in the transaction of the rows' own
updates, read by the dashboard, and deleted with the rows a purge deletes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, String, Text, delete, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from chat_outbox.adapters.sql.tables import UtcDateTime
from chat_outbox.adapters.sql.tables import outbox_attempts as a
from chat_outbox.adapters.sql.tables import outbox_messages as t
from chat_outbox.domain import OutboxEvent, Transition
from chat_outbox.domain.journal import JournalEntry, is_journalled, journal_entry

CHUNK = 1000
COLUMNS = ("outbox_id", "event", "attempt", "error", "happened_at", "next_retry_at")


async def journal(connection: AsyncConnection, transitions: Sequence[Transition]) -> None:
    """Journal the transitions that changed their row, once their guarded updates ran: a
    changed row holds every change of its transition (Transition.changes), and the lock the
    update took keeps it so until the commit. A transition written again (a settle retried
    after a lost commit) finds its line there and adds none."""
    groups: defaultdict[tuple[object, ...], list[Transition]] = defaultdict(list)
    for transition in transitions:
        if is_journalled(transition):
            groups[transition.changes_key].append(transition)
    for alike in groups.values():
        ids = [transition.outbox_id for transition in alike]
        for start in range(0, len(ids), CHUNK):
            lines = _lines(alike[0], ids[start : start + CHUNK])
            await connection.execute(insert(a).from_select(COLUMNS, lines))


def _lines(transition: Transition, ids: Sequence[int]) -> Select[Any]:
    """The journal line of `transition` for each of `ids` it changed, numbered with the
    row's retry count; the transition's other fields are shared by every id."""
    entry = journal_entry(transition, 0)
    written = (
        select(a.c.id)
        .where(a.c.outbox_id == t.c.id, a.c.event == entry.event.value, a.c.happened_at == entry.at)
        .exists()
    )
    changed = [t.c[column] == value for column, value in transition.changes().items()]
    return select(
        t.c.id,
        literal(entry.event.value, String(32)),
        t.c.retry_count,
        literal(entry.error, Text),
        literal(entry.at, UtcDateTime),
        literal(entry.next_retry_at, UtcDateTime),
    ).where(t.c.id.in_(list(ids)), *changed, ~written)


def journal_query(outbox_id: int) -> Select[Any]:
    """The row's journal, oldest line first."""
    query = select(*(a.c[name] for name in COLUMNS)).where(a.c.outbox_id == outbox_id)
    return query.order_by(a.c.id)


def journal_entry_of(row: Any) -> JournalEntry:
    outbox_id, event, attempt, error, at, next_retry_at = row
    return JournalEntry(outbox_id, OutboxEvent(event), attempt, error, at, next_retry_at)


async def forget(connection: AsyncConnection, outbox_ids: Sequence[int]) -> None:
    """Delete the journal of rows about to be purged."""
    await connection.execute(delete(a).where(a.c.outbox_id.in_(list(outbox_ids))))
