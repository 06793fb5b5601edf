"""The chores beside the relay (sweep, purge, gauges) outlive errors nobody foresaw."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

import attrs
import pytest
import structlog

from chat_outbox.adapters.memory import InMemoryUnitOfWork
from chat_outbox.application.metrics import NoMetrics, run_gauge_refresher
from chat_outbox.application.operate.retention import run_purger
from chat_outbox.application.ports import OutboxStats, UnitOfWork
from chat_outbox.application.relay.loop import run_sweeper
from chat_outbox.domain import OutboxStatus
from tests.unit.conftest import Harness

pytestmark = pytest.mark.unit

TIMEOUT = 0.0


class StatementTimeout(Exception):
    """Not StoreUnavailable: what a driver raises when statement_timeout cancels a query."""


@attrs.define
class FailsOnce:
    """A unit-of-work factory whose first unit fails with a non-transient error; then works."""

    harness: Harness
    failed: bool = False

    def __call__(self) -> UnitOfWork:
        if not self.failed:
            self.failed = True
            raise StatementTimeout("canceling statement due to statement timeout")
        return InMemoryUnitOfWork(self.harness.store)


@attrs.define
class GaugeSnapshots(NoMetrics):
    """Metrics that keep each outbox snapshot the refresher hands them."""

    snapshots: list[OutboxStats] = attrs.field(factory=list)

    def outbox_snapshot(self, stats: OutboxStats, now: datetime) -> None:
        self.snapshots.append(stats)


@attrs.frozen
class Case:
    """A chore to run against a unit-of-work factory, how to tell it did its work, and the
    event it logs when a round fails unexpectedly."""

    run: Callable[[FailsOnce, asyncio.Event], Coroutine[Any, Any, object]]
    done: Callable[[], bool]
    event: str


async def sweeper(harness: Harness) -> Case:
    row = await harness.record("stale")
    await harness.relay().relay_due()
    harness.clock.advance(timedelta(minutes=10))
    return Case(
        lambda uow, stopping: run_sweeper(
            uow, harness.clock, stopping, stale_after=timedelta(seconds=1)
        ),
        lambda: harness.status(row.id) is OutboxStatus.PENDING,
        "sweep_failed",
    )


async def purger(harness: Harness) -> Case:
    row = await harness.record("old")
    await harness.relay().relay_due()
    await harness.consumer().consume_batch(TIMEOUT)
    harness.clock.advance(timedelta(days=8))
    return Case(
        lambda uow, stopping: run_purger(
            uow,
            harness.clock,
            stopping,
            retention=timedelta(days=7),
            every=timedelta(milliseconds=10),
        ),
        lambda: row.id not in harness.store.outbox,
        "purge_failed",
    )


async def gauge_refresher(harness: Harness) -> Case:
    metrics = GaugeSnapshots()
    return Case(
        lambda uow, stopping: run_gauge_refresher(
            uow, harness.clock, metrics, stopping, every=0.01
        ),
        lambda: bool(metrics.snapshots),
        "metrics_refresh_failed",
    )


@pytest.mark.parametrize("chore", [sweeper, purger, gauge_refresher])
async def test_a_chore_logs_an_unexpected_error_and_does_its_work_next_round(
    harness: Harness, chore: Callable[[Harness], Coroutine[Any, Any, Case]]
) -> None:
    """A round that raises a non-transient error is logged at error level with its traceback,
    and the chore keeps running: the next round does the work."""
    case = await chore(harness)
    stopping = asyncio.Event()
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(case.run(FailsOnce(harness), stopping))
        for _ in range(300):
            if case.done() or task.done():
                break
            await asyncio.sleep(0.01)
        assert not task.done(), f"the chore ended: {task.exception()!r}"
        assert case.done()
        stopping.set()
        await asyncio.wait_for(task, 5)
    [line] = [line for line in logs if line["event"] == case.event]
    assert (line["log_level"], line.get("exc_info")) == ("error", True)
