"""A new deployment's first backlog: the outbox emptied and analysed while empty, autovacuum
on for its tables as in production, our relay started on it, then rows loaded 1,000 per
transaction as fast as COPY goes while the relay drains them. Statistics from the empty
table are what a claim plan is made from until autoanalyze runs, so every claim's time is
recorded. Half way through the drain the bench ANALYZEs the outbox as autoanalyze would (a
server with autovacuum off, or its one-minute nap, would not within a drain of seconds), so
the claims after the statistics change are timed too."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from bench import claims, db, kafka, procs
from bench.data import COLUMNS, make_rows, records
from bench.procs import Target
from bench.runs import Bench
from bench.settings import POLL_S
from bench.watch import DRAIN
from chat_outbox.domain import OutboxStatus

CHUNK = 1_000
LIMIT_MS = 50.0
"""Issue 21's bound on any one claim on a fresh table."""


async def fresh(bench: Bench) -> list[dict[str, Any]]:
    results = []
    for rep in range(bench.plan.drain_reps):
        topic = await kafka.new_topic(bench.broker, "fresh")
        try:
            result = {**await _run(bench, topic), "rep": rep}
        finally:
            await kafka.drop_topic(bench.broker, topic)
        found = result["claim_ms"]
        print(
            f"  fresh    ours     {result['rate']:>9,.0f} msg/s, {found['batches']} claims: "
            f"p50 {found.get('p50_ms', 0):.1f} ms, p99 {found.get('p99_ms', 0):.1f}, "
            f"max {found.get('max_ms', 0):.1f}, over {LIMIT_MS:.0f} ms: "
            f"{found.get('over_50_ms', 0)}, of them during the ANALYZE: "
            f"{result['claim_ms_during_analyze'].get('over_50_ms', 0)} "
            f"(server autovacuum {result['server_autovacuum']})",
            flush=True,
        )
        results.append(result)
    return results


async def _autovacuum(bench: Bench, on: bool) -> None:
    for table in (db.OUTBOX, db.HISTORY):
        await bench.conn.execute(
            f"ALTER TABLE {table} SET (autovacuum_enabled = {'on' if on else 'off'})"
        )


async def _run(bench: Bench, topic: str) -> dict[str, Any]:
    rows = make_rows(bench.plan.fresh_rows, bench.plan.conversations)
    autovacuum = await bench.conn.fetchval("SHOW autovacuum")
    await db.truncate(bench.conn)
    await bench.conn.execute(f"VACUUM ANALYZE {db.OUTBOX}")
    await _autovacuum(bench, True)
    target = Target(bench.broker.bootstrap_servers, topic, kafka.unique_name("group"), "fresh")
    relay = await procs.spawn("ours", "relay", target, log_level=claims.LOG_LEVEL)
    try:
        await _started(relay)
        await asyncio.sleep(10 * POLL_S)  # a few claims on the empty table first
        began = time.perf_counter()
        for start in range(0, len(rows), CHUNK):
            chunk = records(rows[start : start + CHUNK], topic, OutboxStatus.PENDING)
            await bench.conn.copy_records_to_table(db.OUTBOX, records=chunk, columns=COLUMNS)
        loaded = time.perf_counter() - began
        deadline = began + 60 + len(rows) / 1000
        while await db.count(bench.conn, db.OUTBOX, "status = 'pending'") > len(rows) // 2:
            relay.check_alive()
            if time.perf_counter() > deadline:
                raise TimeoutError("the fresh table was not half drained in time")
            await asyncio.sleep(POLL_S)
        analysing = datetime.now(UTC)
        await bench.conn.execute(f"ANALYZE {db.OUTBOX}")
        analysed = datetime.now(UTC)
        while await db.exists(bench.conn, *DRAIN.backlog):
            relay.check_alive()
            if time.perf_counter() > deadline:
                raise TimeoutError("the fresh table was not drained in time")
            await asyncio.sleep(POLL_S)
        seconds = time.perf_counter() - began
        used = procs.usage([relay], ("relay",))
    finally:
        await procs.stop([relay])
        await _autovacuum(bench, False)
    return {
        "impl": "ours",
        "server_autovacuum": autovacuum,
        "rows": len(rows),
        "rate": len(rows) / seconds,
        "load_s": loaded,
        "peak_rss_mib": used["relay"]["peak_rss_mib"],
        "claim_ms": claims.summary(claims.claim_times([relay])),
        "claim_ms_during_analyze": claims.summary(
            claims.claims_during([relay], analysing, analysed)
        ),
    }


async def _started(relay: procs.Proc, timeout: float = 30.0) -> None:
    """Until the relay logs that it runs (it has connected and checked the schema)."""
    deadline = time.perf_counter() + timeout
    while '"relay_started"' not in relay.log.read_text(errors="replace"):
        relay.check_alive()
        if time.perf_counter() > deadline:
            raise TimeoutError("the relay did not start")
        await asyncio.sleep(POLL_S)
