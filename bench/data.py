"""Deterministic test data: outbox rows like the real recorder's, and the envelopes for them."""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from bench.settings import BIZ_TYPE
from chat_outbox.domain import Envelope, OutboxMessage, OutboxStatus

FILLER = (
    "Could you summarise the last quarter's support tickets by product area, point out the "
    "three most frequent root causes, and suggest one concrete change per cause that the team "
    "could ship within two weeks? Please keep it short, use plain language, and flag anything "
    "you are unsure about so that I can check it."
)
COLUMNS = (
    "id", "event_id", "biz_type", "topic", "message_key", "payload", "status",
    "retry_count", "max_retry", "next_retry_at", "created_at", "updated_at", "published_at",
    "consumed_at",
)  # fmt: skip


@dataclass(frozen=True)
class Row:
    id: int
    event_id: str
    key: str
    payload: str


def conversation(index: int) -> str:
    return f"bench-conv-{index:05d}"


def payload(user_id: int, conversation_id: str, text: str) -> str:
    document = {"user_id": user_id, "conversation_id": conversation_id, "role": "user"}
    document["message"] = text
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def make_rows(count: int, conversations: int, seed: int = 42, first_id: int = 1) -> list[Row]:
    """`count` rows with ids from `first_id`, each in a random one of `conversations`."""
    rng = random.Random(seed)
    rows = []
    for index in range(first_id, first_id + count):
        conv = rng.randrange(conversations)
        text = f"#{index} {FILLER}"
        event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        rows.append(
            Row(index, event_id, conversation(conv), payload(1000 + conv, conversation(conv), text))
        )
    return rows


def records(rows: list[Row], topic: str, status: OutboxStatus) -> list[tuple[object, ...]]:
    """Tuples for COPY in COLUMNS order; timestamps are now, naive UTC like the real table."""
    now = datetime.now(UTC).replace(tzinfo=None)
    consumed = now if status is OutboxStatus.CONSUMED else None
    published = now if status is OutboxStatus.PUBLISHED else consumed
    return [
        (r.id, r.event_id, BIZ_TYPE, topic, r.key, r.payload, status.value, 0, 20, now, now, now,
         published, consumed)
        for r in rows
    ]  # fmt: skip


def envelope(
    row: Row, topic: str, created_at: datetime
) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """(key, value, headers) exactly as our relay would send the row."""
    message = OutboxMessage(
        id=row.id,
        event_id=row.event_id,
        biz_type=BIZ_TYPE,
        topic=topic,
        message_key=row.key,
        payload=row.payload,
        status=OutboxStatus.PUBLISHED,
        created_at=created_at,
        updated_at=created_at,
        next_retry_at=created_at,
    )
    built = Envelope.for_outbox_message(message)
    headers = [
        ("event_id", built.event_id.encode()),
        ("biz_type", built.type.encode()),
        ("schema_version", str(built.schema_version).encode()),
    ]
    return built.key.encode(), built.encode(), headers
