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
from bench.recorder import CONNECTIONS, Recorded, record
from bench.runs import Bench
from bench.settings import POLL_S
from chat_outbox.domain import OutboxStatus

LATENCIES = f"""
SELECT EXTRACT(EPOCH FROM consumed_at - created_at) * 1000
FROM {db.OUTBOX} WHERE id > $1 AND status = 'consumed'
"""
BACKLOG = "status IN ('pending', 'published')"
SUSTAINED = 0.95
"""A rate is sustained when the recorder achieves this share of it (and never falls 1 s behind)."""
PASSES_MS = 100.0
"""Issue 21 names the lowest rate at which p99 passes this."""


COMMITS_PER_S = 1_000
"""The recorder's most commits a second; faster rates put rate/1,000 rows in each."""
REBALANCE_RATE = 1_000
JOIN_AFTER = 1 / 3
"""A rebalance run's second consumer joins this far into the recording."""


async def latency(bench: Bench) -> dict[str, Any]:
    """Every planned rate, ours and the baseline taking turns per repetition: the runs, the
    runs given up on (the recorder could not keep the rate), and per rate and implementation
    the percentiles of all repetitions' latencies pooled."""
    return await _rates(bench, bench.plan.latency_rates, rebalance=False)


async def rebalance(bench: Bench) -> dict[str, Any]:
    """The same at 1,000/s while a second consumer joins the group a third of the way in,
    so every record committed during the rebalance waits for it."""
    return await _rates(bench, (REBALANCE_RATE,), rebalance=True)


async def _rates(bench: Bench, rates: tuple[int, ...], rebalance: bool) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    given_up: list[dict[str, Any]] = []
    table: dict[str, dict[str, dict[str, float]]] = {}
    for rate in rates:
        pooled: dict[str, list[float]] = {impl: [] for impl in IMPLS}
        for rep in range(bench.plan.latency_reps):
            for impl in IMPLS if rep % 2 == 0 else tuple(reversed(IMPLS)):
                topic = await kafka.new_topic(bench.broker, "latency")
                try:
                    result = {**await _run(bench, impl, topic, rate, rebalance), "rep": rep}
                finally:
                    await kafka.drop_topic(bench.broker, topic)
                _progress(result)
                pooled[impl].extend(result.pop("values", []))
                (given_up if result["gave_up"] else runs).append(result)
        table[str(rate)] = {
            impl: _cuts(values) for impl, values in pooled.items() if len(values) >= 100
        }
    return {"runs": runs, "given_up": given_up, "table": table}


def _cuts(values: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(values, n=1000, method="inclusive")
    return {
        "rows": len(values),
        "p50_ms": cuts[499],
        "p95_ms": cuts[949],
        "p99_ms": cuts[989],
        "p999_ms": cuts[998],
        "max_ms": max(values),
    }


def _progress(result: dict[str, Any]) -> None:
    head = f"  latency  {result['impl']:<8} at {result['rate']:>5}/s: "
    if result["gave_up"]:
        print(
            head
            + f"recorder fell {result['recorder_max_lag_ms']:.0f} ms behind: rate not sustained"
        )
        return
    print(
        head + f"p50 {result['p50_ms']:.1f} ms, p95 {result['p95_ms']:.1f}, "
        f"p99 {result['p99_ms']:.1f}, p99.9 {result['p999_ms']:.1f}, "
        f"recorded {result['recorded_rate']:,.0f}/s, "
        f"CPU ms/msg {result['cpu_ms_per_msg']}, claim: {result['claim_scan']}",
        flush=True,
    )


async def _run(
    bench: Bench, impl: str, topic: str, rate: int, rebalance: bool = False
) -> dict[str, Any]:
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
    recording: asyncio.Task[Recorded] | None = None
    try:
        await record(topic, warmup, rate)
        await _drained(bench, running, 60)  # the group has joined: the pipeline is warm
        # Above 1,000/s, rows share commits: one-row commits at 3,000/s outrun 2 cores.
        group = plan.latency_group * max(1, rate // COMMITS_PER_S)
        recording = asyncio.create_task(record(topic, measured, rate, group, CONNECTIONS))
        if rebalance:
            await asyncio.sleep(plan.latency_seconds * JOIN_AFTER)
            running.append(await procs.spawn(impl, "consumer", target, 2, listen=True))
        recorded = await recording
        await _drained(bench, running, 60)
        used = procs.usage(running, ("relay", "consumer", "consumer")[: len(running)])
        scan = await plans.outer_scan(bench.conn, impl)
    finally:
        if recording is not None and not recording.done():
            recording.cancel()
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
    return {
        **common,
        **_cuts(values),
        "values": values,
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
