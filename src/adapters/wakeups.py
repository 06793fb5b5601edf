"""Wake-ups within one process: recording sets a flag the relay is waiting on."""

from __future__ import annotations

import asyncio
import contextlib

from application.ports import Wakeups


class NoWakeups(Wakeups):
    """Polling only: every wait runs its full timeout."""

    async def wait(self, timeout: float) -> bool:
        await asyncio.sleep(timeout)
        return False

    def follower(self) -> Wakeups:
        return self


class LocalWakeups(Wakeups):
    """For a recorder and a relay sharing a process: `notify()` after each commit. A
    wake-up that comes while nobody waits is kept for the next wait."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._followers: list[LocalWakeups] = []

    def notify(self) -> None:
        self._event.set()
        for follower in self._followers:
            follower.notify()

    def follower(self) -> Wakeups:
        follower = _Follower(self)
        self._followers.append(follower)
        return follower

    async def ready(self) -> None:
        """Called before each wait: a subclass that listens elsewhere (re)connects here."""

    async def wait(self, timeout: float) -> bool:
        await self.ready()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)
        woken = self._event.is_set()
        self._event.clear()
        return woken


class _Follower(LocalWakeups):
    """Its own flag, set by every notify of its leader, which does the listening."""

    def __init__(self, leader: LocalWakeups) -> None:
        super().__init__()
        self._leader = leader

    async def ready(self) -> None:
        await self._leader.ready()
