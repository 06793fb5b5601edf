"""Wake-ups within one process: recording sets a flag the relay is waiting on."""

from __future__ import annotations

import asyncio
import contextlib

from chat_outbox.application.ports import Wakeups


class NoWakeups(Wakeups):
    """Polling only: every wait runs its full timeout."""

    async def wait(self, timeout: float) -> bool:
        await asyncio.sleep(timeout)
        return False


class LocalWakeups(Wakeups):
    """For a recorder and a relay sharing a process: `notify()` after each commit."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)
        woken = self._event.is_set()
        self._event.clear()
        return woken
