"""The consumer's patience with a database or bus out of reach: the same action again, with
backoff, until it works or a stop is asked for."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import attrs
import structlog

from chat_outbox.application.errors import BusUnavailable, StoreUnavailable
from chat_outbox.domain import RetryPolicy

log = structlog.get_logger(__name__)

Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")


@attrs.frozen
class Patience:
    policy: RetryPolicy
    stopping: asyncio.Event
    sleep: Sleep

    async def until_done(self, what: str, action: Callable[[], Awaitable[T]]) -> T:
        """Retry a transient failure (database or bus unreachable) with backoff until it
        works or a stop is asked for; the batch is neither skipped nor acknowledged."""
        attempt = 0
        while True:
            try:
                return await action()
            except (StoreUnavailable, BusUnavailable) as error:
                attempt += 1
                if self.stopping.is_set():
                    raise
                delay = self.policy.backoff(attempt).total_seconds()
                log.warning(
                    f"{what}_failed_retrying",
                    error=str(error),
                    attempt=attempt,
                    retry_in_s=round(delay, 3),
                )
                await self.sleep(delay)
