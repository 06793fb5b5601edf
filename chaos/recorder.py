"""Record the run's messages at a steady pace, so faults land while traffic flows."""

from __future__ import annotations

import asyncio
import time

import attrs

from chat_outbox.adapters.clock import SystemClock, uuid4_event_id
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.application.record.recording import record_chat_message
from chat_outbox.domain import ChatMessage, Role

BATCH = 50


@attrs.define
class Recorded:
    """What was recorded: each conversation's texts in order, and every event id."""

    texts: dict[str, list[str]] = attrs.Factory(dict)
    event_ids: set[str] = attrs.Factory(set)

    @property
    def count(self) -> int:
        return len(self.event_ids)


def conversation_name(index: int) -> str:
    return f"chaos-conv-{index:04d}"


async def record(
    uow: SqlUnitOfWorkFactory,
    topic: str,
    messages: int,
    conversations: int,
    over_s: float,
    recorded: Recorded,
) -> None:
    """Record `messages` round-robin over `conversations`, BATCH per transaction, spread
    evenly over `over_s` seconds (faster if the database is slower than that pace)."""
    clock = SystemClock()
    names = [conversation_name(index) for index in range(conversations)]
    for name in names:
        recorded.texts.setdefault(name, [])
    started = time.monotonic()
    per_batch_s = over_s * BATCH / max(messages, 1)
    for first in range(0, messages, BATCH):
        batch: list[tuple[str, str, str]] = []
        async with uow() as unit:
            for n in range(first, min(first + BATCH, messages)):
                name = names[n % conversations]
                text = f"{name} message #{n}: {'lorem ipsum ' * (n % 7)}".rstrip()
                chat = ChatMessage(1 + n % conversations, name, Role.USER, text)
                message = await record_chat_message(
                    unit, chat, topic=topic, clock=clock, event_ids=uuid4_event_id
                )
                batch.append((name, text, message.event_id))
            await unit.commit()
        for name, text, event_id in batch:
            recorded.texts[name].append(text)
            recorded.event_ids.add(event_id)
        ahead = started + per_batch_s * (first // BATCH + 1) - time.monotonic()
        if ahead > 0:
            await asyncio.sleep(ahead)
