"""The bench database: create and migrate it, empty it, seed it, and ask it cheap questions."""

from __future__ import annotations

import asyncpg  # type: ignore[import-untyped]

from bench.data import COLUMNS, FILLER, Row, make_rows, records
from bench.settings import BIZ_TYPE, DATABASE, SERVER_DSN, dsn, sqlalchemy_url
from chat_outbox.adapters.sql import create_engine, upgrade
from chat_outbox.domain import OutboxStatus

OUTBOX = "agent_outbox_messages"
HISTORY = "chat_history_messages"
HISTORY_ROWS = 10_000
FIRST_ID = HISTORY_ROWS + 1
# Rows generated in the database (ids from the sequence): a big table in seconds, not minutes.
FILL = f"""
INSERT INTO {OUTBOX} (event_id, biz_type, topic, message_key, payload, status, retry_count,
    max_retry, next_retry_at, created_at, updated_at, published_at, consumed_at)
SELECT gen_random_uuid()::text, '{BIZ_TYPE}', 'bench.fill', c, p, s, 0, 20, t, t, t,
       CASE WHEN s = 'consumed' THEN t END, CASE WHEN s = 'consumed' THEN t END
FROM generate_series(1, $1::int) AS g,
LATERAL (SELECT 'bench-conv-' || lpad((g % $3::int)::text, 5, '0') AS c,
                CASE WHEN g > $1::int - $2::int THEN 'pending' ELSE 'consumed' END AS s,
                (now() AT TIME ZONE 'UTC') - make_interval(secs => $1::int - g) AS t) AS v,
LATERAL (SELECT json_build_object('user_id', 1000 + g % $3::int, 'conversation_id', c,
                'role', 'user', 'message', '#' || g || ' ' || $4::text)::text AS p) AS w
"""


async def prepare() -> None:
    """Create the database when missing and bring its schema to head with Alembic."""
    server = await asyncpg.connect(SERVER_DSN)
    try:
        exists = await server.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE)
        if not exists:
            await server.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await server.close()
    engine = create_engine(sqlalchemy_url())
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    conn = await connect()
    try:
        for table in (OUTBOX, HISTORY):  # no autoanalyze flipping a plan in mid-run
            await conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = off)")
    finally:
        await conn.close()


async def connect() -> asyncpg.Connection:
    return await asyncpg.connect(dsn())


async def truncate(conn: asyncpg.Connection) -> None:
    """Empty the outbox and history (never the one-row claim-lock table)."""
    await conn.execute(f"TRUNCATE {OUTBOX}, {HISTORY} RESTART IDENTITY")


async def fill(conn: asyncpg.Connection, count: int, pending: int, conversations: int) -> None:
    """Add `count` rows, the last `pending` of them pending and the rest consumed."""
    await conn.execute(FILL, count, pending, conversations, FILLER)


async def seed(
    conn: asyncpg.Connection,
    rows: list[Row],
    topic: str,
    status: OutboxStatus,
    conversations: int,
    history: int = HISTORY_ROWS,
) -> None:
    """Truncate; add `history` older consumed rows (ids below the scenario's: COPYed, or made
    in the database when more than HISTORY_ROWS), then COPY the rows; move the id sequence
    past them; ANALYZE (the statistics autoanalyze would reach once it saw the backlog);
    checkpoint."""
    await truncate(conn)
    if history > HISTORY_ROWS:
        await fill(conn, history, 0, conversations)
        await conn.execute(f"VACUUM {OUTBOX}")
    else:
        past = make_rows(history, conversations, seed=7)
        old = records(past, "bench.history", OutboxStatus.CONSUMED)
        await conn.copy_records_to_table(OUTBOX, records=old, columns=COLUMNS)
    await conn.copy_records_to_table(OUTBOX, records=records(rows, topic, status), columns=COLUMNS)
    last = rows[-1].id if rows else history
    await conn.execute(f"SELECT setval(pg_get_serial_sequence('{OUTBOX}', 'id'), $1)", last)
    await settle(conn)


async def settle(conn: asyncpg.Connection) -> None:
    """Same start for every run: fresh planner statistics, no checkpoint pending."""
    await conn.execute(f"ANALYZE {OUTBOX}")
    await conn.execute("CHECKPOINT")


async def exists(conn: asyncpg.Connection, table: str, where: str = "TRUE") -> bool:
    return bool(await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table} WHERE {where})"))


async def count(conn: asyncpg.Connection, table: str, where: str = "TRUE") -> int:
    return int(await conn.fetchval(f"SELECT count(*) FROM {table} WHERE {where}"))


async def status_counts(conn: asyncpg.Connection, first_id: int) -> dict[str, int]:
    """Rows by status from `first_id` on (the seeded history is left out)."""
    query = f"SELECT status, count(*) AS n FROM {OUTBOX} WHERE id >= $1 GROUP BY status"
    rows = await conn.fetch(query, first_id)
    return {row["status"]: row["n"] for row in rows}
