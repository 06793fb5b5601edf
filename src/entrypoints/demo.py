"""`chat-outbox demo`: record a few dozen messages, relay, consume, and read them back."""

from __future__ import annotations

import argparse
import asyncio

import structlog

from adapters.sql import upgrade
from application import operations
from application.consuming import run_consumer
from application.relaying import run_relay
from domain import ChatMessage, Role
from entrypoints.commands import stats_document
from entrypoints.config import Settings
from entrypoints.containers import InProcessContainer

log = structlog.get_logger(__name__)
ROLES = (Role.USER, Role.ASSISTANT)


def demo_messages(count: int, conversations: int, run_id: str) -> list[ChatMessage]:
    return [
        ChatMessage.create(
            user_id=1000 + index % conversations,
            conversation_id=f"demo-{run_id}-{index % conversations}",
            role=ROLES[(index // conversations) % 2],
            message=f"message {index // conversations + 1} of conversation {index % conversations}",
        )
        for index in range(count)
    ]


async def run(args: argparse.Namespace, settings: Settings) -> int:
    container = InProcessContainer(settings=settings)
    await container.init_resources()  # type: ignore[misc]
    try:
        await upgrade(await container.core.engine.async_())
        return await _pipeline(container, args.messages, args.conversations)
    finally:
        await container.shutdown_resources()  # type: ignore[misc]


async def _pipeline(container: InProcessContainer, count: int, conversations: int) -> int:
    record = await container.core.record.async_()
    clock = container.core.clock()
    run_id = f"{clock.now():%H%M%S%f}"
    recorded = [await record(chat) for chat in demo_messages(count, conversations, run_id)]
    log.info("demo_recorded", messages=len(recorded), conversations=conversations)

    relay = await container.relay.async_()
    consumer = await container.consumer.async_()
    await run_relay(relay, asyncio.Event(), poll_interval=0.05, once=True)
    await run_consumer(consumer, idle_exit=0.2, poll_timeout=0.1)

    uow = await container.core.uow.async_()
    persisted = 0
    for index in range(conversations):
        conversation_id = f"demo-{run_id}-{index}"
        entries = await operations.read_history(uow, conversation_id)
        persisted += len(entries)
        print(f"\n== conversation {conversation_id} ({len(entries)} messages)")
        for entry in entries:
            print(f"  #{entry.outbox_id:<6} {entry.role.value:>9}: {entry.message}")
    figures = stats_document(await operations.outbox_stats(uow), clock.now())
    print("\n== outbox stats")
    for name, value in figures.items():
        print(f"  {name:<26}{'-' if value is None else value}")
    if persisted != len(recorded):
        log.error("demo_incomplete", recorded=len(recorded), persisted=persisted)
        return 1
    print(f"\nAll {persisted} recorded messages were relayed and read back from chat history.")
    return 0
