"""`chat-outbox demo`: record a few dozen messages, relay, consume, and read them back.

On Kafka (the default) it runs the real pipeline: a local broker unless one is configured,
and the relay and the consumer as their own processes. CHAT_OUTBOX_BUS=rabbitmq runs the
same pipeline on the RabbitMQ at CHAT_OUTBOX_RABBITMQ_URL. CHAT_OUTBOX_BUS=memory runs all
three in this process instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator

import structlog

from chat_outbox.adapters.sql import upgrade
from chat_outbox.application.consume.loop import run_consumer
from chat_outbox.application.operate import operations
from chat_outbox.application.ports import Clock, UnitOfWorkFactory
from chat_outbox.application.record.recording import RecordChatMessage
from chat_outbox.application.relay.loop import run_relay
from chat_outbox.domain import ChatMessage, OutboxStatus, Role
from chat_outbox.entrypoints.bus_clients import local_kafka_broker, require_bus
from chat_outbox.entrypoints.commands import command_tools, stats_document
from chat_outbox.entrypoints.config import PREFIX, Settings
from chat_outbox.entrypoints.containers import InProcessContainer, Tools, provided, resources

log = structlog.get_logger(__name__)
ROLES = (Role.USER, Role.ASSISTANT)
DEADLINE_S = 90.0
# A fast group join and fetch on the local broker (its defaults cost seconds per rebalance).
LOCAL_BROKER_TUNING = {
    "KAFKA_SESSION_TIMEOUT_MS": "6000",
    "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
    "KAFKA_REBALANCE_TIMEOUT_MS": "2000",
    "KAFKA_FETCH_MAX_WAIT_MS": "10",
    "RELAY_POLL_INTERVAL": "0.05",
}


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
    if settings.core.bus == "memory":
        return await _in_process(settings, args.messages, args.conversations)
    require_bus(settings.core.bus)  # here, not in the relay and consumer it spawns and waits for
    async with _broker(settings) as env:
        return await _with_processes(settings, env, args.messages, args.conversations)


@contextlib.asynccontextmanager
async def _broker(settings: Settings) -> AsyncIterator[dict[str, str]]:
    """The environment for the relay and consumer: on Kafka, with a local broker if none
    is set; RabbitMQ is the configured one."""
    env = dict(os.environ)
    if settings.core.bus != "kafka" or PREFIX + "KAFKA_BOOTSTRAP_SERVERS" in os.environ:
        log.info("demo_bus", bus=settings.core.bus)
        yield env
        return
    async with local_kafka_broker() as bootstrap:
        log.info("demo_local_broker_started", bootstrap=bootstrap)
        env[PREFIX + "KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
        env.update(
            {
                PREFIX + name: value
                for name, value in LOCAL_BROKER_TUNING.items()
                if PREFIX + name not in os.environ
            }
        )
        yield env


async def _with_processes(
    settings: Settings, env: dict[str, str], count: int, conversations: int
) -> int:
    async with command_tools(settings, migrated=False) as tools:
        await upgrade(tools.engine)
        record, uow = tools.record, tools.uow
        run_id, ids = await _record(record, count, conversations)
        processes = [await _spawn(command, env) for command in (["relay"], ["consume"])]
        try:
            await _wait_consumed(uow, ids)
        finally:
            await _stop(processes)
        return await _report(uow, record.clock, run_id, conversations, len(ids))


async def _in_process(settings: Settings, count: int, conversations: int) -> int:
    async with resources(InProcessContainer(settings=settings)) as container:
        tools: Tools = await provided(container.tools)
        await upgrade(tools.engine)
        run_id, ids = await _record(tools.record, count, conversations)
        await run_relay(await provided(container.relay), asyncio.Event(), once=True)
        consumer = await provided(container.consumer)
        await run_consumer(consumer, idle_exit=0.2, poll_timeout=0.1)
        return await _report(tools.uow, tools.clock, run_id, conversations, len(ids))


async def _record(
    record: RecordChatMessage, count: int, conversations: int
) -> tuple[str, list[int]]:
    run_id = f"{record.clock.now():%H%M%S%f}"
    ids = [(await record(chat)).id for chat in demo_messages(count, conversations, run_id)]
    log.info("demo_recorded", messages=len(ids), conversations=conversations)
    return run_id, ids


async def _spawn(command: list[str], env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chat_outbox", *command, env=env
    )


async def _wait_consumed(uow: UnitOfWorkFactory, ids: list[int]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        figures = await operations.outbox_stats(uow)
        if figures.counts[OutboxStatus.PENDING] + figures.counts[OutboxStatus.PUBLISHED] == 0:
            return
        await asyncio.sleep(0.2)
    log.error("demo_timed_out", waited_s=DEADLINE_S)


async def _stop(processes: list[asyncio.subprocess.Process]) -> None:
    for process in processes:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()


async def _report(
    uow: UnitOfWorkFactory, clock: Clock, run_id: str, conversations: int, recorded: int
) -> int:
    persisted = 0
    for index in range(conversations):
        conversation_id = f"demo-{run_id}-{index}"
        entries = await operations.read_history(uow, conversation_id)
        persisted += len(entries)
        print(f"\n== conversation {conversation_id} ({len(entries)} messages)")
        for entry in entries:
            print(f"  #{entry.outbox_id:<6} {entry.role.value:>9}: {entry.message}")
    figures = await operations.outbox_stats(uow)
    print("\n== outbox stats")
    for name, value in stats_document(figures, clock.now()).items():
        print(f"  {name:<26}{'-' if value is None else value}")
    if persisted != recorded:
        log.error("demo_incomplete", recorded=recorded, persisted=persisted)
        return 1
    print(f"\nAll {persisted} recorded messages were relayed and read back from chat history.")
    return 0
