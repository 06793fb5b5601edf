"""The claim queries' plans: ours captured from adapters.sql.claims.lock_runs itself (a
before_cursor_execute listener, run once and rolled back), the baseline's from its source."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import event

from bench.baseline_relay import CLAIM
from bench.procs import OURS
from bench.settings import sqlalchemy_url
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory, create_engine
from chat_outbox.adapters.sql.claims import lock_runs

Query = tuple[str, tuple[Any, ...]]
_captured: list[Query] = []


async def capture_ours() -> Query:
    """Run lock_runs once (rolled back), as a relay on PostgreSQL does by default (row
    locks, no lease), and keep the SELECT .. SKIP LOCKED it sent."""
    if _captured:
        return _captured[0]
    engine = create_engine(sqlalchemy_url())
    seen: list[Query] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, tuple(parameters or ())))

    try:
        async with SqlUnitOfWorkFactory(engine)() as uow:
            await lock_runs(uow.connection, datetime.now(UTC), 500)
    finally:
        await engine.dispose()
    claims = [(s, p) for s, p in seen if "SKIP LOCKED" in s and "agent_outbox_messages" in s]
    if not claims:
        raise RuntimeError("lock_runs sent no SELECT .. FOR UPDATE SKIP LOCKED")
    _captured.append(claims[-1])
    return claims[-1]


def fresh(query: Query) -> Query:
    """The same query with its timestamps moved to now."""
    now = datetime.now(UTC).replace(tzinfo=None)
    sql, params = query
    return sql, tuple(now if isinstance(p, datetime) else p for p in params)


@cache
def baseline() -> Query:
    return CLAIM, (500,)


async def claim_query(impl: str) -> Query:
    return fresh(await capture_ours()) if impl in OURS else baseline()


async def outer_scan(conn: asyncpg.Connection, impl: str) -> str:
    """The first scan node of the claim's plan right now, e.g. 'Index Scan using ..pkey'."""
    sql, params = await claim_query(impl)
    lines = [row[0] for row in await conn.fetch(f"EXPLAIN {sql}", *params)]
    scans = [line.strip().removeprefix("->").strip() for line in lines if "Scan" in line]
    return scans[0].split("  (")[0] if scans else "?"
