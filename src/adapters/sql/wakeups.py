"""PostgreSQL LISTEN/NOTIFY wake-ups: a trigger notifies on every insert into the outbox."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.wakeups import LocalWakeups, NoWakeups
from chat_outbox.application.ports import Wakeups

CHANNEL = "chat_outbox_pending"
log = structlog.get_logger(__name__)


class PostgresWakeups(LocalWakeups):
    """Listens on its own connection. If that connection fails, the relay still polls, and
    listening resumes on the next wait."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__()
        self._engine = engine
        self._raw: Any = None

    async def wait(self, timeout: float) -> bool:
        if self._raw is None or self._raw.driver_connection.is_closed():
            await self._listen()
        return await super().wait(timeout)

    async def _listen(self) -> None:
        await self.close()
        try:
            self._raw = await self._engine.raw_connection()
            await self._raw.driver_connection.add_listener(CHANNEL, self._on_notify)
        except Exception as error:  # noqa: BLE001 - polling covers the gap; never crash
            log.warning("listen_failed_polling_instead", error=f"{type(error).__name__}: {error}")
            self._raw = None

    def _on_notify(self, *_: object) -> None:
        self.notify()

    async def close(self) -> None:
        raw, self._raw = self._raw, None
        if raw is not None:
            with contextlib.suppress(Exception):
                await raw.driver_connection.remove_listener(CHANNEL, self._on_notify)
            raw.invalidate()  # a LISTENing connection must not go back to the pool


async def wakeups_for(engine: AsyncEngine) -> AsyncGenerator[Wakeups, None]:
    """Resource: LISTEN/NOTIFY on PostgreSQL, polling elsewhere."""
    if engine.dialect.name != "postgresql":
        yield NoWakeups()
        return
    wakeups = PostgresWakeups(engine)
    try:
        yield wakeups
    finally:
        await wakeups.close()
