"""Persist a batch of records: chat history inserted idempotently and the outbox rows
marked consumed, each row's insert and mark in one transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from chat_outbox.application.ports import Clock, FreshHistory, UnitOfWorkFactory
from chat_outbox.domain import Envelope, HistoryEntry, consumed


@attrs.frozen
class Persisted:
    inserted: int
    conflicting: frozenset[str] = frozenset()
    """Event ids already in history with other content: left as stored, not consumed."""
    forged: Mapping[str, str] = attrs.field(factory=dict)
    """Event ids whose outbox row does not vouch for them, each with the reason: nothing
    written, no row touched."""


@attrs.frozen
class HistoryWriter:
    uow: UnitOfWorkFactory
    clock: Clock
    fresh: FreshHistory | None = attrs.field(default=None, kw_only=True)
    """A shortcut for batches of new event ids (PostgreSQL: one statement, one round trip
    instead of four); a batch it cannot take whole goes on in a unit of work."""

    async def persist(self, envelopes: Sequence[Envelope]) -> Persisted:
        """Insert new history rows and mark their outbox rows consumed, each row's insert
        and mark in one transaction (the shortcut's, or else the unit of work's), but only
        for records their outbox row vouches for (Provenance.mismatch). A record it does not
        vouch for is a forgery or stale, and the caller dead-letters it, unless its event id
        is in history with the same content: a redelivery, harmless even after the row was
        purged. An event id already stored with other content is a conflict, never silently
        kept: the caller dead-letters it too."""
        unique = {e.event_id: e for e in envelopes}
        # One lock order for every consumer (a rebalance or a redelivery can hand two of them
        # the same records): history rows and outbox rows are both written in outbox id order,
        # so concurrent consumers wait on each other instead of deadlocking.
        ordered = sorted(unique.values(), key=lambda envelope: envelope.outbox_id)
        entries = [HistoryEntry.from_envelope(envelope) for envelope in ordered]
        now = self.clock.now()
        fresh = 0
        if self.fresh is not None:
            fresh = await self.fresh.add_consumed(entries, now)
            if fresh == len(entries):
                return Persisted(fresh)
            # Some were in history already, or not vouched for: told apart below. The rows
            # just inserted are consumed, and the guard refuses them a second time.
        async with self.uow() as uow:
            rows = await uow.outbox.provenances([e.outbox_id for e in ordered])
            vouched: list[HistoryEntry] = []
            refused: dict[str, str] = {}
            for envelope, entry in zip(ordered, entries, strict=True):
                claimed = envelope.provenance
                reason = claimed.mismatch(rows.get(claimed.id))
                if reason is None:
                    vouched.append(entry)
                else:
                    refused[entry.event_id] = reason
            inserted = await uow.history.add_many(vouched)
            stored: dict[str, HistoryEntry] = {}
            if inserted < len(vouched) or refused:  # only redeliveries and forgeries look up
                stored = await uow.history.by_event_ids([e.event_id for e in entries])
            conflicting = frozenset(
                e.event_id for e in entries if e.event_id in stored and stored[e.event_id] != e
            )
            forged = {
                event_id: reason for event_id, reason in refused.items() if event_id not in stored
            }
            await uow.outbox.apply(
                [consumed(e.outbox_id, now) for e in vouched if e.event_id not in conflicting]
            )
            await uow.commit()
        return Persisted(fresh + inserted, conflicting, forged)
