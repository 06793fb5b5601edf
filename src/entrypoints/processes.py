"""The relay and the consumer processes: each runs the jobs its container builds until
SIGINT/SIGTERM (`chat-outbox relay` and `consume`), or until a host process stops them
(the public API's `Outbox.relay()` and `Outbox.consumer()`)."""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Callable
from typing import TypeVar

import attrs
import structlog
from dependency_injector import containers, providers

from chat_outbox.application.consume.consuming import ConsumeReport
from chat_outbox.application.relay.relaying import RelayReport
from chat_outbox.entrypoints.config import ConfigError, Settings
from chat_outbox.entrypoints.config_parsers import import_path
from chat_outbox.entrypoints.containers import (
    ConsumerContainer,
    RelayContainer,
    provided,
    resources,
)
from chat_outbox.entrypoints.events import EventRegistry, load_registry
from chat_outbox.entrypoints.jobs import Jobs

R = TypeVar("R")
C = TypeVar("C", bound=containers.Container)
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
    events = _registry(args, settings)
    await run_relay(settings, stop_on_signals, once=args.once, events=events)
    return 0


def _registry(args: argparse.Namespace, settings: Settings) -> EventRegistry:
    """The registry `--handlers` names, else the setting's; loaded before anything connects,
    so a wrong path is a usage error."""
    path = (
        settings.core.events if args.handlers is None else import_path("--handlers", args.handlers)
    )
    return load_registry(path)


async def run_relay(
    settings: Settings, started: Started, *, once: bool = False, events: EventRegistry | None = None
) -> RelayReport:
    """Publish due rows until asked to stop (or, with `once`, until none is due). `events`:
    the host's registry, instead of the one `settings.core.events` names."""
    _require_cross_process_bus(settings)
    async with resources(_with_events(RelayContainer(settings=settings), events)) as container:
        jobs: Jobs[RelayReport] = await provided(container.jobs, once=once)
        started(jobs.stopping.set)
        log.info(
            "relay_started",
            bus=settings.core.bus,
            topic=settings.core.topic,
            once=once,
            lanes=settings.relay_lanes_at_once,
        )
        totals = await run_jobs(jobs)
        log.info("relay_stopped", **attrs.asdict(totals))
    return totals


def _with_events(container: C, events: EventRegistry | None) -> C:
    if events is not None:
        container.core.events.override(providers.Object(events))  # type: ignore[attr-defined]
    return container


async def run_jobs(jobs: Jobs[R]) -> R:
    """Run the main job and its chores; return the main job's report."""
    # A task group: if one task crashes, the others are cancelled before the engine and
    # the bus clients are closed under them.
    async with asyncio.TaskGroup() as group:
        main = group.create_task(jobs.main())
        for chore in jobs.chores:
            group.create_task(chore())
    return main.result()


async def consume(args: argparse.Namespace, settings: Settings) -> int:
    if args.idle_exit is not None and args.idle_exit <= 0:
        raise ConfigError("--idle-exit must be a positive number of seconds")
    events = _registry(args, settings)
    await run_consume(settings, stop_on_signals, idle_exit=args.idle_exit, events=events)
    return 0


async def run_consume(
    settings: Settings,
    started: Started,
    *,
    idle_exit: float | None = None,
    events: EventRegistry | None = None,
) -> ConsumeReport:
    """Persist bus records into chat history, and hand other events to their handlers,
    until asked to stop (or idle that long). `events`: as run_relay's."""
    _require_cross_process_bus(settings)
    async with resources(_with_events(ConsumerContainer(settings=settings), events)) as container:
        jobs: Jobs[ConsumeReport] = await provided(container.jobs, idle_exit=idle_exit)
        started(jobs.stopping.set)
        log.info(
            "consumer_started",
            bus=settings.core.bus,
            topic=settings.core.topic,
            group=settings.consumer.group,
        )
        totals = await run_jobs(jobs)
        log.info("consumer_stopped", **attrs.asdict(totals))
    return totals
