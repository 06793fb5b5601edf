"""Periodic retention: the relay deletes consumed rows older than the retention, now and then."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import structlog

from application.errors import StoreUnavailable
from application.operations import purge_consumed
from application.ports import Clock, UnitOfWorkFactory

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
    while not stopping.is_set():
        try:
            purged = await purge_consumed(uow, clock.now() - retention, batch, stopping=stopping)
        except StoreUnavailable as error:
            log.warning("purge_store_unavailable", error=str(error))
        except Exception:
            # A chore must not take the relay down with it (a statement timeout, say):
            # logged with its traceback, tried again after the interval.
            log.exception("purge_failed", retry_in_s=every.total_seconds())
        else:
            purged_total += purged
            if purged:
                log.info("consumed_purged", rows=purged, retention_s=retention.total_seconds())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), every.total_seconds())
    return purged_total
