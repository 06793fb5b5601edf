"""Time, identifiers and wake-ups."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class Wakeups(Protocol):
    """Tells the relay that rows may have become due, so it need not wait for its poll."""

    async def wait(self, timeout: float) -> bool:
        """Return True when woken, False when `timeout` seconds passed without a wake-up."""
        ...


class Clock(Protocol):
    def now(self) -> datetime: ...


class EventIds(Protocol):
    def __call__(self) -> str: ...
