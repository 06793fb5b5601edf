"""Readiness of the database: one trivial query on a pooled connection."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.sql.engine import is_transient, unavailable


class DatabaseProbe:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def __call__(self) -> None:
        try:
            async with self._engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as error:
            # The one-line reason without the URL or its password.
            raise (unavailable(error) if is_transient(error) else error) from error
