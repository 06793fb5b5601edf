"""Periodic retention: the relay deletes consumed rows older than the retention, now and then."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog

from chat_outbox.application.operate.chores import repeat
from chat_outbox.application.operate.operations import purge_consumed
from chat_outbox.application.ports import Clock, UnitOfWorkFactory

log = structlog.get_logger(__name__)


async def run_purger(
    uow: UnitOfWorkFactory,
    clock: Clock,
    stopping: asyncio.Event,
    *,
    retention: timedelta,
    every: timedelta,
    batch: int = 1000,
) -> int:
    """Purge at once, then every `every`, until `stopping` is set. Several relays may purge
    together: each batch is its own short transaction and deletes only consumed rows."""
    purged_total = 0

    async def round_() -> None:
        nonlocal purged_total
        purged = await purge_consumed(uow, clock.now() - retention, batch, stopping=stopping)
        purged_total += purged
        if purged:
            log.info("consumed_purged", rows=purged, retention_s=retention.total_seconds())

    await repeat("purge", round_, stopping, every.total_seconds())
    return purged_total
