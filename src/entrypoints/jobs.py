"""What the relay and consumer processes run, as their containers build it: the main loop,
whose report the process returns, and the chores beside it, each stopped by one event."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import timedelta
from functools import partial
from typing import Any, Generic, TypeVar

import attrs

from chat_outbox.application.consume.consuming import Consumer, ConsumeReport
from chat_outbox.application.consume.loop import run_consumer
from chat_outbox.application.metrics import Metrics, run_gauge_refresher
from chat_outbox.application.operate.retention import run_purger
from chat_outbox.application.ports import Clock, UnitOfWorkFactory, Wakeups
from chat_outbox.application.relay.loop import Polling, run_relay_lanes, run_sweeper
from chat_outbox.application.relay.relaying import Relay, RelayReport
from chat_outbox.entrypoints.config import Settings

R = TypeVar("R")
Chore = Callable[[], Coroutine[Any, Any, object]]


@attrs.frozen
class Jobs(Generic[R]):
    """A process's work: `main` until `stopping` is set, and `chores` for as long."""

    stopping: asyncio.Event
    main: Callable[[], Coroutine[Any, Any, R]]
    chores: tuple[Chore, ...] = ()


def relay_jobs(
    settings: Settings,
    relays: list[Relay],
    polling: Polling,
    wakeups: Wakeups,
    uow: UnitOfWorkFactory,
    clock: Clock,
    metrics: Metrics,
    *,
    once: bool = False,
) -> Jobs[RelayReport]:
    """The relay's lanes and, unless it only drains what is due (`once`), its chores."""
    stopping = asyncio.Event()
    main = partial(run_relay_lanes, relays, stopping, polling=polling, wakeups=wakeups, once=once)
    chores = () if once else relay_chores(settings, uow, clock, metrics, stopping)
    return Jobs(stopping, main, chores)


def relay_chores(
    settings: Settings,
    uow: UnitOfWorkFactory,
    clock: Clock,
    metrics: Metrics,
    stopping: asyncio.Event,
) -> tuple[Chore, ...]:
    """The stale-published sweep, the retention purge and the metrics gauges' refresh,
    each when configured."""
    relay = settings.relay
    chores: list[Chore] = []
    if relay.sweep_published_after:
        stale_after = timedelta(seconds=relay.sweep_published_after)
        chores.append(partial(run_sweeper, uow, clock, stopping, stale_after=stale_after))
    if relay.retention:
        retention = timedelta(seconds=relay.retention)
        every = timedelta(seconds=relay.purge_interval)
        chores.append(
            partial(
                run_purger,
                uow,
                clock,
                stopping,
                retention=retention,
                every=every,
                batch=relay.purge_batch_size,
            )
        )
    if settings.metrics.port:
        every_s = settings.metrics.refresh_seconds
        chores.append(partial(run_gauge_refresher, uow, clock, metrics, stopping, every=every_s))
    return tuple(chores)


def relay_lanes(make: Callable[[], Relay], count: int) -> list[Relay]:
    """`count` relays, one per lane, each with its own claims."""
    return [make() for _ in range(count)]


def consumer_jobs(consumer: Consumer, *, idle_exit: float | None = None) -> Jobs[ConsumeReport]:
    """The consumer's loop, stopped by its own event (or after `idle_exit` idle seconds)."""
    return Jobs(consumer.stopping, partial(run_consumer, consumer, idle_exit=idle_exit))
