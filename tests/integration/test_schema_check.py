"""The schema check a relay or consumer makes as it starts: a connection cut during the
check is retried, a database that stays down still fails the start."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any, cast

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chat_outbox.adapters.sql.migrate import SCHEMA_CHECK_ATTEMPTS, ensure_migrated
from chat_outbox.application.errors import StoreUnavailable

pytestmark = pytest.mark.integration


class CutConnections:
    """The engine, except that its first `cuts` connections fail as a killed session does."""

    def __init__(self, engine: AsyncEngine, cuts: int) -> None:
        self.engine = engine
        self.cuts = cuts
        self.attempts = 0

    def connect(self) -> AbstractAsyncContextManager[AsyncConnection]:
        self.attempts += 1
        if self.attempts <= self.cuts:
            raise ConnectionResetError("connection reset by peer")
        return self.engine.connect()


async def test_a_connection_cut_during_the_check_is_retried(engine: AsyncEngine) -> None:
    """One cut connection does not fail the start: the check passes on a new connection."""
    cut = CutConnections(engine, cuts=1)

    await ensure_migrated(cast(Any, cut))

    assert cut.attempts == 2


async def test_a_database_that_stays_down_fails_the_start(engine: AsyncEngine) -> None:
    """Every attempt cut: the start fails with the database's unavailability, after a
    bounded number of attempts."""
    cut = CutConnections(engine, cuts=SCHEMA_CHECK_ATTEMPTS)

    with pytest.raises(StoreUnavailable, match="database unavailable: ConnectionResetError"):
        await ensure_migrated(cast(Any, cut))

    assert cut.attempts == SCHEMA_CHECK_ATTEMPTS
