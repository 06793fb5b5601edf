"""Commit-to-consumed latency at a steady recording rate, relay + consumer running.

created_at is the recorder's statement time (now() in its one-statement transaction);
consumed_at is what each consumer writes when it persists the row (the start of its
transaction, as taken by our HistoryWriter and by the baseline's now())."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from bench import db, kafka, plans, procs
from bench.data import make_rows
from bench.procs import IMPLS, Target
from bench.recorder import record
from bench.runs import Bench
from bench.settings import POLL_S
from chat_outbox.domain import OutboxStatus

LATENCIES = f"""
SELECT EXTRACT(EPOCH FROM consumed_at - created_at) * 1000
FROM {db.OUTBOX} WHERE id > $1 AND status = 'consumed'
"""
BACKLOG = "status IN ('pending', 'published')"


RATES = (1000, 700, 500, 300, 200, 100)
"""Tried from the plan's rate down until the recorder keeps its schedule in every run."""
SUSTAINED = 0.95
"""A rate is sustained when the recorder achieves this share of it (and never falls 1 s behind)."""


async def latency(bench: Bench) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(runs at the highest rate both pipelines sustained, the runs given up on)."""
    given_up: list[dict[str, Any]] = []
    results: list[dict[str, Any]] | None = None
    for rate in [r for r in RATES if r <= bench.plan.latency_rate] or [bench.plan.latency_rate]:
        results = await _at_rate(bench, rate, given_up)
        if results is not None:
            break
    return results or [], given_up


async def _at_rate(
    bench: Bench, rate: int, given_up: list[dict[str, Any]]
) -> list[dict[str, Any]] | None:
    """All repetitions at one rate, ours and the baseline alternating; None on a give-up."""
    results = []
    for rep in range(bench.plan.latency_reps):
        for impl in IMPLS if rep % 2 == 0 else tuple(reversed(IMPLS)):
            topic = await kafka.new_topic(bench.broker, "latency")
            result = {**await _run(bench, impl, topic, rate), "rep": rep}
            await kafka.drop_topic(bench.broker, topic)
            _progress(result)
            if result["gave_up"]:
                given_up.append(result)
                return None
            results.append(result)
    return results


def _progress(result: dict[str, Any]) -> None:
    head = f"  latency  {result['impl']:<8} at {result['rate']:>5}/s: "
    if result["gave_up"]:
        print(head + f"recorder fell {result['recorder_max_lag_ms']:.0f} ms behind; slower")
        return
    print(
        head + f"p50 {result['p50_ms']:.1f} ms, p95 {result['p95_ms']:.1f}, "
        f"p99 {result['p99_ms']:.1f}, recorded {result['recorded_rate']:,.0f}/s, "
        f"CPU ms/msg {result['cpu_ms_per_msg']}, claim: {result['claim_scan']}",
        flush=True,
    )


async def _run(bench: Bench, impl: str, topic: str, rate: int) -> dict[str, Any]:
    plan = bench.plan
    rows = make_rows(int(rate * plan.latency_seconds) + 1, plan.conversations)
    warmup, measured = rows[:1], rows[1:]
    await db.seed(bench.conn, [], topic, OutboxStatus.PENDING, plan.conversations)
    after = db.FIRST_ID  # the warm-up row's id; measured rows come after it
    target = Target(bench.broker.bootstrap_servers, topic, kafka.unique_name("group"), "latency")
    running = [
        await procs.spawn(impl, role, target, index, listen=True)
        for index, role in enumerate(("relay", "consumer"))
    ]
    try:
        await record(topic, warmup, rate)
        await _drained(bench, running, 60)  # the group has joined: the pipeline is warm
        recorded = await record(topic, measured, rate, plan.latency_group)
        await _drained(bench, running, 60)
        used = procs.usage(running, ("relay", "consumer"))
        scan = await plans.outer_scan(bench.conn, impl)
    finally:
        await procs.stop(running)
    common = {
        "impl": impl,
        "rate": rate,
        "gave_up": recorded.gave_up or recorded.rate < SUSTAINED * rate,
        "recorded_rate": recorded.rate,
        "recorder_max_lag_ms": recorded.max_lag_ms,
    }
    values = [float(v) for (v,) in await bench.conn.fetch(LATENCIES, after)]
    if common["gave_up"] or len(values) < 100:
        return {**common, "gave_up": True}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {
        **common,
        "rows": len(values),
        "p50_ms": cuts[49],
        "p95_ms": cuts[94],
        "p99_ms": cuts[98],
        "max_ms": max(values),
        "peak_rss_mib": {role: u["peak_rss_mib"] for role, u in used.items()},
        "cpu_ms_per_msg": {
            role: None if u["cpu_s"] is None else 1000 * u["cpu_s"] / len(values)
            for role, u in used.items()
        },
        "claim_scan": scan,
    }


async def _drained(bench: Bench, running: list[procs.Proc], timeout: float) -> None:
    deadline = time.perf_counter() + timeout
    while await db.exists(bench.conn, db.OUTBOX, BACKLOG):
        for proc in running:
            proc.check_alive()
        if time.perf_counter() > deadline:
            raise TimeoutError(f"latency run not drained within {timeout:.0f} s")
        await asyncio.sleep(POLL_S)
