"""Throughput scenarios: drain (relays only), end-to-end (relay + consumer), persist
(consumer only, from a pre-produced topic). The implementations take turns each repetition,
in a rotated order."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from bench import db, kafka
from bench.data import Row, envelope, make_rows
from bench.procs import IMPLS, MINIMAL, ONCE, ONE_LANE
from bench.runs import Bench, Spec, measure
from bench.watch import DRAIN, E2E, PERSIST
from chat_outbox.domain import OutboxStatus

Runs = list[dict[str, Any]]


DRAIN_IMPLS = {
    1: ("ours", ONCE, ONE_LANE, "baseline", MINIMAL),
    2: ("ours", "baseline", MINIMAL),
}
"""Per relay count: `relay --once` and one lane are compared as one process only."""


async def _alternate(
    bench: Bench,
    spec: Spec,
    reps: int,
    topic: str | None = None,
    impls: tuple[str, ...] = IMPLS,
) -> Runs:
    results: Runs = []
    for rep in range(reps):
        turn = rep % len(impls)
        for impl in impls[turn:] + impls[:turn]:
            run_topic = topic or await kafka.new_topic(bench.broker, spec.label)
            result = await measure(bench, spec, impl, run_topic)
            results.append({**result, "rep": rep})
            _progress(spec.label, result)
            if topic is None:
                await kafka.drop_topic(bench.broker, run_topic)
    return results


def _short(figures: dict[str, float | None]) -> str:
    return " ".join(f"{k} {v:.2f}" for k, v in figures.items() if v is not None)


def _rows(bench: Bench, count: int) -> list[Row]:
    return make_rows(count, bench.plan.conversations, first_id=db.FIRST_ID)


def _progress(label: str, result: dict[str, Any]) -> None:
    print(
        f"  {label:<8} {result['impl']:<8} {result['rate']:>9,.0f} msg/s "
        f"(steady {result['steady_rate']:,.0f}, first after {result['startup_s']:.2f} s, "
        f"MiB {_short(result['peak_rss_mib'])}, CPU ms/msg {_short(result['cpu_ms_per_msg'])})"
        f" claim: {result['claim_scan']}",
        flush=True,
    )


async def drain(bench: Bench, relays: int) -> Runs:
    rows = _rows(bench, bench.plan.drain_rows)
    label = f"drain{relays}"
    spec = Spec(label, rows, OutboxStatus.PENDING, ("relay",) * relays, DRAIN)
    return await _alternate(bench, spec, bench.plan.drain_reps, impls=DRAIN_IMPLS[relays])


async def e2e(bench: Bench) -> Runs:
    rows = _rows(bench, bench.plan.e2e_rows)
    spec = Spec("e2e", rows, OutboxStatus.PENDING, ("relay", "consumer"), E2E)
    return await _alternate(bench, spec, bench.plan.reps)


async def persist(bench: Bench) -> Runs:
    """One topic holds the N envelopes; each run reads it with a fresh consumer group."""
    rows = _rows(bench, bench.plan.persist_rows)
    topic = await kafka.new_topic(bench.broker, "persist")
    created = datetime.now(UTC)
    began = time.perf_counter()
    await kafka.produce(
        bench.broker.bootstrap_servers, topic, [envelope(row, topic, created) for row in rows]
    )
    print(f"  persist  produced {len(rows):,} envelopes in {time.perf_counter() - began:.1f} s")
    spec = Spec("persist", rows, OutboxStatus.PUBLISHED, ("consumer",), PERSIST)
    try:
        return await _alternate(bench, spec, bench.plan.reps, topic)
    finally:
        await kafka.drop_topic(bench.broker, topic)
