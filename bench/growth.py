"""Cost as the table grows: our relay draining the same backlog with 10k, then 1M older
consumed rows already in the outbox (or the counts given with --history), with every
claim's time from its logs. Asked for with --only growth: a big table takes long to seed."""

from __future__ import annotations

from typing import Any

from bench import kafka
from bench.data import make_rows
from bench.runs import Bench, Spec, measure
from bench.watch import DRAIN
from chat_outbox.domain import OutboxStatus


async def growth(bench: Bench) -> list[dict[str, Any]]:
    results = []
    for history in bench.plan.growth_history:
        rows = make_rows(bench.plan.drain_rows, bench.plan.conversations, first_id=history + 1)
        spec = Spec(
            "growth", rows, OutboxStatus.PENDING, ("relay",), DRAIN, claims=True, history=history
        )
        for rep in range(bench.plan.drain_reps):
            topic = await kafka.new_topic(bench.broker, "growth")
            try:
                result = {**await measure(bench, spec, "ours", topic), "history": history}
            finally:
                await kafka.drop_topic(bench.broker, topic)
            found = result["claim_ms"]
            print(
                f"  growth   {history:>10,} older rows: {result['rate']:>9,.0f} msg/s, "
                f"{found['batches']} claims: p50 {found.get('p50_ms', 0):.1f} ms, "
                f"p99 {found.get('p99_ms', 0):.1f}, max {found.get('max_ms', 0):.1f}; "
                f"relay peak RSS {result['peak_rss_mib'].get('relay') or 0:.0f} MiB",
                flush=True,
            )
            results.append({**result, "rep": rep})
    return results
