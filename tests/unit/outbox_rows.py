"""Outbox rows that vouch for hand-built records, as the relay would have left them."""

from __future__ import annotations

import json

from chat_outbox.adapters.memory import InMemoryStore
from chat_outbox.domain import Envelope, OutboxMessage, OutboxStatus


def row_for(record: bytes) -> OutboxMessage:
    """The published outbox row this record was relayed from."""
    envelope = Envelope.decode(record, 2**62)
    at = envelope.occurred_at
    return OutboxMessage(
        id=envelope.outbox_id,
        event_id=envelope.event_id,
        biz_type=envelope.type,
        topic="chat.messages",
        message_key=envelope.key,
        payload=json.dumps(envelope.payload.to_payload(), ensure_ascii=False),
        status=OutboxStatus.PUBLISHED,
        created_at=at,
        updated_at=at,
        next_retry_at=at,
        published_at=at,
    )


def add_rows_for(store: InMemoryStore, *records: bytes) -> None:
    """Commit the outbox row of each record into the in-memory store."""
    for record in records:
        row = row_for(record)
        store.outbox[row.id] = row
