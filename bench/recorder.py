"""A steady-rate recorder for the latency test: plain INSERTs over a few connections, each
statement its own transaction, NOTIFYing bench_outbox in that same transaction."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass

import asyncpg  # type: ignore[import-untyped]

from bench.data import Row
from bench.settings import BIZ_TYPE, NOTIFY_CHANNEL, dsn

# One statement = one transaction (autocommit): the rows and the NOTIFY commit together.
INSERT = f"""
WITH added AS (
    INSERT INTO agent_outbox_messages (event_id, biz_type, topic, message_key, payload, status,
        retry_count, max_retry, next_retry_at, created_at, updated_at)
    SELECT e, '{BIZ_TYPE}', $1, k, p, 'pending', 0, 20, ts, ts, ts
    FROM unnest($2::text[], $3::text[], $4::text[]) AS x(e, k, p),
         (SELECT now() AT TIME ZONE 'UTC' AS ts) AS clock
    RETURNING id
)
SELECT pg_notify('{NOTIFY_CHANNEL}', '') FROM (SELECT count(*) FROM added) AS done
"""
CONNECTIONS = 4
GIVE_UP_LAG_S = 1.0
"""Behind schedule by this much, the rate is not sustained: stop early."""


@dataclass(frozen=True)
class Recorded:
    rows: int
    seconds: float
    max_lag_ms: float
    """How far behind its schedule the recorder fell at worst."""
    gave_up: bool = False

    @property
    def rate(self) -> float:
        return self.rows / self.seconds


async def record(
    topic: str, rows: list[Row], rate: float, group: int = 1, connections: int = CONNECTIONS
) -> Recorded:
    """Insert `rows` at `rate` rows/s, `group` rows per transaction, on schedule."""
    groups = [rows[i : i + group] for i in range(0, len(rows), group)]
    pool = await asyncpg.create_pool(dsn(), min_size=connections, max_size=connections)
    assert pool is not None
    numbers = itertools.count()
    lags: list[float] = []
    started = time.perf_counter() + 0.05
    recorded = 0

    async def worker() -> None:
        nonlocal recorded
        async with pool.acquire() as conn:
            statement = await conn.prepare(INSERT)
            while (index := next(numbers)) < len(groups):
                due = started + index * group / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    lags.append(-delay)
                    if -delay > GIVE_UP_LAG_S:
                        return
                chunk = groups[index]
                await statement.fetchval(
                    topic, [r.event_id for r in chunk], [r.key for r in chunk],
                    [r.payload for r in chunk],
                )  # fmt: skip
                recorded += len(chunk)

    try:
        await asyncio.gather(*(worker() for _ in range(connections)))
    finally:
        await pool.close()
    elapsed = max(time.perf_counter() - started, 1e-9)
    lag = max(lags, default=0.0)
    return Recorded(recorded, elapsed, 1000 * lag, lag > GIVE_UP_LAG_S)
