"""The relay and consumer processes run what their containers build, shaped by the settings."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial

import pytest
from dependency_injector import providers

from chat_outbox.application.metrics import run_gauge_refresher
from chat_outbox.application.operate.retention import run_purger
from chat_outbox.application.relay.loop import run_sweeper
from chat_outbox.domain import OutboxStatus
from chat_outbox.entrypoints.config import Settings
from chat_outbox.entrypoints.containers import ConsumerContainer, RelayContainer, provided
from chat_outbox.entrypoints.processes import run_jobs
from tests.unit.conftest import Harness

pytestmark = pytest.mark.unit

CHORES = {"sweep_published_after": 45, "retention": "7d", "purge_interval": "2h"}


def relay_container(harness: Harness, **settings: object) -> RelayContainer:
    """A relay process's container over the harness's fakes."""
    container = RelayContainer(settings=Settings.of(bus="kafka", **settings))
    container.relay.override(providers.Factory(harness.relay))
    container.wakeups.override(providers.Object(None))
    container.core.uow.override(providers.Object(harness.uow))
    container.core.clock.override(providers.Object(harness.clock))
    return container


def consumer_container(harness: Harness) -> ConsumerContainer:
    container = ConsumerContainer(settings=Settings.of(bus="kafka"))
    container.consumer.override(providers.Object(harness.consumer()))
    return container


async def test_the_relay_container_builds_a_relay_per_lane_and_the_configured_chores(
    harness: Harness,
) -> None:
    """Lanes, the sweep's age, the purge's retention and interval, and the gauges' refresh
    (only with a metrics port) all come from the settings."""
    container = relay_container(harness, relay_lanes=3, metrics_port=9464, **CHORES)
    jobs = await provided(container.jobs)
    assert isinstance(jobs.main, partial)
    assert len(jobs.main.args[0]) == 3
    chores = [chore for chore in jobs.chores if isinstance(chore, partial)]
    assert [chore.func for chore in chores] == [run_sweeper, run_purger, run_gauge_refresher]
    sweep, purge, _ = chores
    assert sweep.keywords["stale_after"] == timedelta(seconds=45)
    assert (purge.keywords["retention"], purge.keywords["every"]) == (
        timedelta(days=7),
        timedelta(hours=2),
    )


async def test_a_relay_without_a_sweep_retention_or_metrics_port_runs_no_chore(
    harness: Harness,
) -> None:
    container = relay_container(harness, sweep_published_after=0)
    jobs = await provided(container.jobs)
    assert jobs.chores == ()


async def test_the_relay_that_drains_once_runs_no_chore_and_stops_when_nothing_is_due(
    harness: Harness,
) -> None:
    """`relay --once` publishes what is due and returns, chores or not."""
    recorded = await harness.record()
    jobs = await provided(relay_container(harness, **CHORES).jobs, once=True)
    report = await run_jobs(jobs)
    assert jobs.chores == ()
    assert report.published == 1
    assert harness.status(recorded.id) is OutboxStatus.PUBLISHED


async def test_the_consumer_jobs_persist_what_the_relay_jobs_published(harness: Harness) -> None:
    """The two processes' containers, run on the same fakes, carry a recorded message into
    chat history; the consumer runs until its jobs' stop is set."""
    recorded = await harness.record()
    await run_jobs(await provided(relay_container(harness).jobs, once=True))
    jobs = await provided(consumer_container(harness).jobs)
    running = asyncio.create_task(run_jobs(jobs))
    async with asyncio.timeout(5):
        # The fakes signal no commit, so the store is looked at until the row is consumed.
        while harness.status(recorded.id) is not OutboxStatus.CONSUMED:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    jobs.stopping.set()
    report = await running
    assert report.persisted == 1


async def test_stopping_the_consumer_jobs_stops_the_consumer(harness: Harness) -> None:
    """The event a process sets on SIGTERM is the consumer's own."""
    container = consumer_container(harness)
    jobs = await provided(container.jobs)
    jobs.stopping.set()
    assert container.consumer().stopping.is_set()
    report = await run_jobs(jobs)
    assert report.persisted == 0


async def test_the_consumer_jobs_carry_the_idle_exit_to_the_consumer_loop(
    harness: Harness,
) -> None:
    """`consume --idle-exit S` is the loop's idle limit; without it the loop never idles out."""
    container = consumer_container(harness)
    timed = await provided(container.jobs, idle_exit=7.5)
    endless = await provided(container.jobs)
    assert isinstance(timed.main, partial)
    assert isinstance(endless.main, partial)
    assert (timed.main.keywords["idle_exit"], endless.main.keywords["idle_exit"]) == (7.5, None)
