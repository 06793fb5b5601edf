"""The claim's plan: on the narrowest indexes each database has, even when PostgreSQL's
statistics were taken while the whole backlog was still pending (the state a drain is in
until autoanalyze catches up)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.adapters.sql.claims import lock_runs
from chat_outbox.adapters.sql.statements import (
    CLAIM_PLAN,
    LEASE_HEADS,
    LOCK_HEADS,
    LOCK_RUNS,
    lock_runs_of_shard,
)

pytestmark = pytest.mark.integration
on_postgresql = pytest.mark.parametrize("migrated_engine", ["postgresql"], indirect=True)

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
SEED_MORE = text(
    """
    INSERT INTO agent_outbox_messages (event_id, biz_type, topic, message_key, payload,
        status, retry_count, max_retry, next_retry_at, created_at, updated_at)
    SELECT gen_random_uuid()::text, 'chat_history_persist', 't', 'conv-' || (g % 1000), '{}',
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


async def analysed_empty(engine: AsyncEngine) -> None:
    """What a new deployment or a truncated outbox looks like to the planner."""
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE agent_outbox_messages"))


@on_postgresql
async def test_the_claim_walks_its_index_when_the_table_was_analysed_empty(
    engine: AsyncEngine,
) -> None:
    """Statistics taken while empty make the planner expect one pending row: without the
    claim's own plan settings it reads and sorts the whole backlog."""
    at = datetime.now(UTC).replace(tzinfo=None)
    await analysed_empty(engine)
    async with engine.begin() as conn:
        await conn.execute(SEED, {"at": at, "rows": ROWS})
    for claim in (LOCK_RUNS, lock_runs_of_shard("postgresql"), LEASE_HEADS["postgresql"]):
        async with engine.begin() as conn:
            await conn.execute(CLAIM_PLAN)
            plan = await claim_plan(conn, at, claim)
            await conn.rollback()
        assert "idx_outbox_pending_id" in plan, plan
        assert "Sort" not in plan, plan
        assert "Seq Scan" not in plan, plan


@on_postgresql
async def test_a_claim_stays_bounded_as_rows_arrive_after_an_empty_analyse(
    engine: AsyncEngine,
) -> None:
    """A relay that started on an empty, analysed table claims from a backlog growing to
    50k rows; every claim is on the same connection, where a generic plan made for the
    empty table would be kept. Bounded at 100x a healthy claim's few milliseconds: the
    plans this guards against took seconds."""
    await analysed_empty(engine)
    uow = SqlUnitOfWorkFactory(engine)
    at = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=1)
    for _ in range(8):  # past the executions after which PostgreSQL may go generic
        async with uow() as empty:
            assert await lock_runs(empty.connection, datetime.now(UTC), 500) == []
    slowest = 0.0
    for _ in range(10):
        async with engine.begin() as conn:
            await conn.execute(SEED_MORE, {"at": at, "rows": 5_000})
        async with uow() as claiming:  # left uncommitted: the backlog keeps growing
            started = time.perf_counter()
            claimed = await lock_runs(claiming.connection, datetime.now(UTC), 500)
            slowest = max(slowest, time.perf_counter() - started)
        assert len(claimed) == 500
    assert slowest < 0.5, f"slowest claim took {slowest * 1000:.0f} ms"
