"""The consumer's history write over any unit of work, several statements in one transaction:
the rules that tell a new entry, a redelivery, a conflict and a forgery apart."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import attrs

from chat_outbox.application.ports import (
    HistoryWriter,
    Persisted,
    UnitOfWorkFactory,
    in_lock_order,
)
from chat_outbox.domain import Envelope, HistoryEntry, consumed


@attrs.frozen
class UnitOfWorkHistoryWriter(HistoryWriter):
    """Looks each batch's outbox rows up, inserts what they vouch for, looks stored entries
    up only when some were not new or not vouched for, and marks the inserted rows consumed."""

    uow: UnitOfWorkFactory

    async def persist(self, envelopes: Sequence[Envelope], at: datetime) -> Persisted:
        ordered = in_lock_order(envelopes)
        entries = [HistoryEntry.from_envelope(envelope) for envelope in ordered]
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
                [consumed(e.outbox_id, at) for e in vouched if e.event_id not in conflicting]
            )
            await uow.commit()
        return Persisted(inserted, conflicting, forged)
