"""What the relay, the consumer and the API report for monitoring, behind a small port.

adapters.metrics turns these calls into Prometheus series; NoMetrics is the default, so
the use cases never depend on a metrics library.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import structlog

from chat_outbox.application.operate.chores import repeat
from chat_outbox.application.operate.operations import outbox_stats
from chat_outbox.application.ports import Clock, OutboxStats, UnitOfWorkFactory

log = structlog.get_logger(__name__)


class Metrics(Protocol):
    def published(self, latencies_s: Sequence[float]) -> None:
        """Messages the bus acknowledged, each with its created-to-published latency."""
        ...

    def publish_failed(self, retried: int, dead: int) -> None:
        """Failed publishes: scheduled for a retry, or moved to dead."""
        ...

    def consumed(self, consume_latencies_s: Sequence[float], end_to_end_s: Sequence[float]) -> None:
        """Records written to chat history: published-to-consumed (when the bus stamps its
        records) and created-to-consumed latencies."""
        ...

    def dead_lettered(self, records: int = 1) -> None: ...

    def consumer_lag(self, topic: str, partition: int, lag: int) -> None:
        """Records behind the partition's high-water mark, as of the latest fetch."""
        ...

    def outbox_snapshot(self, stats: OutboxStats, now: datetime) -> None:
        """Rows by status and the oldest pending age, from the stats query."""
        ...


class NoMetrics(Metrics):
    def published(self, latencies_s: Sequence[float]) -> None:
        pass

    def publish_failed(self, retried: int, dead: int) -> None:
        pass

    def consumed(self, consume_latencies_s: Sequence[float], end_to_end_s: Sequence[float]) -> None:
        pass

    def dead_lettered(self, records: int = 1) -> None:
        pass

    def consumer_lag(self, topic: str, partition: int, lag: int) -> None:
        pass

    def outbox_snapshot(self, stats: OutboxStats, now: datetime) -> None:
        pass


async def refresh_outbox_gauges(uow: UnitOfWorkFactory, clock: Clock, metrics: Metrics) -> None:
    metrics.outbox_snapshot(await outbox_stats(uow), clock.now())


async def run_gauge_refresher(
    uow: UnitOfWorkFactory,
    clock: Clock,
    metrics: Metrics,
    stopping: asyncio.Event,
    *,
    every: float,
) -> None:
    """Refresh the outbox gauges every `every` seconds until stopped; the stats query is
    too heavy to run per message, and a scrape must not wait on the database."""
    await repeat(
        "metrics_refresh", lambda: refresh_outbox_gauges(uow, clock, metrics), stopping, every
    )
