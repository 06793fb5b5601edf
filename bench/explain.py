"""The plan of our real claim query on a big outbox (mostly consumed, some pending).

The SQL is captured from adapters.sql.claims.lock_runs itself (a before_cursor_execute
listener), then EXPLAINed with its own parameters: once with ANALYZE (custom plan), and once
as the generic plan a prepared statement may switch to after five executions."""

from __future__ import annotations

import time
from typing import Any

from bench import db
from bench.plans import capture_ours, fresh
from bench.runs import Bench


class _Rollback(Exception):
    pass


def _literal(value: object) -> str:
    if isinstance(value, bool | int | float):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


async def explain(bench: Bench) -> dict[str, Any]:
    plan = bench.plan
    began = time.perf_counter()
    await db.truncate(bench.conn)
    await db.fill(bench.conn, plan.explain_rows, plan.explain_pending, plan.conversations)
    await bench.conn.execute(f"VACUUM ANALYZE {db.OUTBOX}")
    seeded = time.perf_counter() - began
    sql, params = fresh(await capture_ours())
    plans: dict[str, list[str]] = {}
    try:
        async with bench.conn.transaction():
            rows = await bench.conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", *params)
            plans["analyze"] = [row[0] for row in rows]
            await bench.conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            await bench.conn.execute(f"PREPARE bench_claim AS {sql}")
            values = ", ".join(map(_literal, params))
            rows = await bench.conn.fetch(f"EXPLAIN EXECUTE bench_claim({values})")
            plans["generic"] = [row[0] for row in rows]
            raise _Rollback
    except _Rollback:
        pass
    await bench.conn.execute("DEALLOCATE ALL")
    await db.truncate(bench.conn)
    return {
        "rows": plan.explain_rows,
        "pending": plan.explain_pending,
        "seed_s": seeded,
        "sql": sql,
        "plans": plans,
        "seq_scan_on_outbox": {
            name: any("Seq Scan on agent_outbox_messages" in line for line in lines)
            for name, lines in plans.items()
        },
    }
