"""The relay and the consumer as long-running jobs: `chat-outbox relay` and `consume` run
them until SIGINT/SIGTERM, and a host process runs the same jobs through the public API."""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

import attrs
import structlog

from chat_outbox.adapters.sql import ensure_migrated
from chat_outbox.application.consume.consuming import ConsumeReport
from chat_outbox.application.consume.loop import run_consumer
from chat_outbox.application.metrics import run_gauge_refresher
from chat_outbox.application.operate.retention import run_purger
from chat_outbox.application.relay.loop import run_relay_lanes, run_sweeper
from chat_outbox.application.relay.relaying import RelayReport
from chat_outbox.entrypoints.config import ConfigError, Settings
from chat_outbox.entrypoints.containers import ConsumerContainer, RelayContainer, resources

log = structlog.get_logger(__name__)


def _require_cross_process_bus(settings: Settings) -> None:
    if settings.core.bus == "memory":
        raise ConfigError(
            "CHAT_OUTBOX_BUS=memory only works inside `chat-outbox demo`, where the relay "
            "and the consumer share one process; use kafka or rabbitmq"
        )


def stop_on_signals(stop: Callable[[], None]) -> None:
    """The first SIGINT/SIGTERM asks for a graceful stop; a second one is not caught."""
    loop = asyncio.get_running_loop()

    def handle(signum: signal.Signals) -> None:
        log.info("stop_requested", signal=signum.name)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, handle, sig)


Started = Callable[[Callable[[], None]], None]
"""Told, once the job's resources are up, the function that asks the job to stop."""


async def relay(args: argparse.Namespace, settings: Settings) -> int:
    await run_relay(settings, stop_on_signals, once=args.once)
    return 0


async def run_relay(settings: Settings, started: Started, *, once: bool = False) -> RelayReport:
    """Publish due rows until asked to stop (or, with `once`, until none is due)."""
    _require_cross_process_bus(settings)
    async with resources(RelayContainer(settings=settings)) as container:
        await ensure_migrated(await container.core.engine.async_())
        stopping = asyncio.Event()
        started(stopping.set)
        lanes = settings.relay_lanes_at_once
        log.info(
            "relay_started",
            bus=settings.core.bus,
            topic=settings.core.topic,
            once=once,
            lanes=lanes,
        )
        relaying = run_relay_lanes(
            [await container.relay.async_() for _ in range(lanes)],
            stopping,
            polling=container.polling(),
            wakeups=await container.wakeups.async_(),
            once=once,
        )
        chores = [] if once else await _chores(container, settings, stopping)
        # A task group: if one task crashes, the others are cancelled before the engine
        # and producer are closed under them.
        async with asyncio.TaskGroup() as group:
            relay_task = group.create_task(relaying)
            for chore in chores:
                group.create_task(chore)
        totals = relay_task.result()
        log.info("relay_stopped", **attrs.asdict(totals))
    return totals


async def _chores(
    container: RelayContainer, settings: Settings, stopping: asyncio.Event
) -> list[Coroutine[Any, Any, object]]:
    """What runs beside the relay: the stale-published sweep, the retention purge and the
    metrics gauges' refresh, each when configured."""
    uow = await container.core.uow.async_()
    clock = container.core.clock()
    chores: list[Coroutine[Any, Any, object]] = []
    if settings.relay.sweep_published_after:
        stale_after = timedelta(seconds=settings.relay.sweep_published_after)
        chores.append(run_sweeper(uow, clock, stopping, stale_after=stale_after))
    if settings.relay.retention:
        chores.append(
            run_purger(
                uow,
                clock,
                stopping,
                retention=timedelta(seconds=settings.relay.retention),
                every=timedelta(seconds=settings.relay.purge_interval),
                batch=settings.relay.purge_batch_size,
            )
        )
    if settings.metrics.port:
        every = settings.metrics.refresh_seconds
        metrics = container.core.metrics()
        chores.append(run_gauge_refresher(uow, clock, metrics, stopping, every=every))
    return chores


async def consume(args: argparse.Namespace, settings: Settings) -> int:
    if args.idle_exit is not None and args.idle_exit <= 0:
        raise ConfigError("--idle-exit must be a positive number of seconds")
    await run_consume(settings, stop_on_signals, idle_exit=args.idle_exit)
    return 0


async def run_consume(
    settings: Settings, started: Started, *, idle_exit: float | None = None
) -> ConsumeReport:
    """Persist bus records into chat history until asked to stop (or idle that long)."""
    _require_cross_process_bus(settings)
    async with resources(ConsumerContainer(settings=settings)) as container:
        await ensure_migrated(await container.core.engine.async_())
        consumer = await container.consumer.async_()
        started(consumer.stopping.set)
        log.info(
            "consumer_started",
            bus=settings.core.bus,
            topic=settings.core.topic,
            group=settings.consumer.group,
        )
        totals = await run_consumer(consumer, idle_exit=idle_exit)
        log.info("consumer_stopped", **attrs.asdict(totals))
    return totals
