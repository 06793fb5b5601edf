"""The claim's plan: on the narrowest indexes each database has, even when PostgreSQL's
statistics were taken while the whole backlog was still pending (the state a drain is in
until autoanalyze catches up)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

from chat_outbox.adapters.sql.statements import (
    LEASE_HEADS,
    LOCK_HEADS,
    LOCK_RUNS,
    lock_runs_of_shard,
)

pytestmark = pytest.mark.integration

ROWS = 30_000
SEED = text(
    """
    INSERT INTO agent_outbox_messages (event_id, biz_type, topic, message_key, payload,
        status, retry_count, max_retry, next_retry_at, created_at, updated_at)
    SELECT 'plan-' || g, 'chat_history_persist', 't', 'conv-' || (g % 500), '{}',
        'pending', 0, 20, :at, :at, :at
    FROM generate_series(1, :rows) AS g
    """
)
# PostgreSQL has partial indexes for the claim (migration 0007); the others the full ones.
EXPECTED = {
    "postgresql": ("idx_outbox_pending_id", "idx_outbox_holding_key_id"),
    "sqlite": ("idx_outbox_key_status_id",),
    "mysql": ("idx_outbox_key_status_id",),  # MariaDB
}


async def stale_statistics(engine: AsyncEngine, at: datetime) -> None:
    """PostgreSQL: ANALYZE with every row pending, then publish four fifths of them."""
    async with engine.begin() as conn:
        await conn.execute(SEED, {"at": at, "rows": ROWS})
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("ANALYZE agent_outbox_messages"))
    async with engine.begin() as conn:
        published = "UPDATE agent_outbox_messages SET status = 'published' WHERE id <= :n"
        await conn.execute(text(published), {"n": ROWS * 4 // 5})


async def claim_plan(conn: AsyncConnection, at: datetime, claim: ClauseElement) -> str:
    dialect = conn.dialect
    values: dict[str, Any] = {"now": at, "limit": 500, "lease_until": at}
    values.update(shard_index=1, shard_count=2)
    compiled = cast(SQLCompiler, claim.compile(dialect=dialect))
    if dialect.name == "sqlite":
        params = compiled.construct_params(values)
        positional = tuple(params[name] for name in compiled.positiontup or ())
        rows = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", positional)
        return "\n".join(str(row[-1]) for row in rows)
    params = compiled.construct_params(values)
    positional = tuple(params[name] for name in compiled.positiontup or ())
    rows = await conn.exec_driver_sql(f"EXPLAIN {compiled}", positional)
    return "\n".join(" ".join(str(value) for value in row) for row in rows)


async def test_the_claim_uses_the_narrowest_indexes_of_its_database(engine: AsyncEngine) -> None:
    """The pending scan and the conversation checks each name their index; on PostgreSQL that holds
    with stale statistics, where the primary key used to win and walked every published
    row (16 ms against 3 ms per claim in the bench)."""
    at = datetime.now(UTC).replace(tzinfo=None)
    if engine.dialect.name == "postgresql":
        await stale_statistics(engine, at)
    # Locking relays claim runs, of their shard when they share; MariaDB's leasing relays
    # lock heads first.
    claims: tuple[ClauseElement, ...] = (LOCK_HEADS, LOCK_RUNS)
    if engine.dialect.name != "sqlite":
        claims = (*claims, lock_runs_of_shard(engine.dialect.name))
    if engine.dialect.name == "sqlite":
        claims = (LEASE_HEADS["sqlite"],)
    for claim in claims:
        async with engine.connect() as conn:
            plan = await claim_plan(conn, at, claim)
        for index in EXPECTED[engine.dialect.name]:
            assert index in plan, plan
        assert "pkey" not in plan, plan
        # Walks the id index to its limit: no reading and sorting of the whole backlog.
        assert "Sort" not in plan, plan
        assert "filesort" not in plan, plan
