"""Parse the options, run the chosen scenarios against one local broker, print and save."""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bench import db, latency, throughput
from bench.explain import explain
from bench.profiling import profile
from bench.report import lines, table, write_json
from bench.runs import Bench
from bench.settings import SCENARIOS, Plan, plan_for
from chat_outbox.entrypoints.local_broker import LocalBroker

NOTES = [
    "Each run seeds 10k older consumed rows before its own, then ANALYZEs (autovacuum is off "
    "on the bench tables, so no plan changes mid-run); 'claim_scan' in the JSON is each "
    "run's claim plan.",
    "Latency: one row per transaction (4 recorder connections, plain INSERT + pg_notify in "
    "one statement); created_at = the statement's now(), consumed_at = the consumer's.",
    "Consumer persist is timed from the first history row (group join excluded).",
]


def parse(argv: list[str] | None) -> Plan:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--profile", action="store_true", help="also profile the relays")
    parser.add_argument("--reps", type=int, help="repetitions per scenario")
    args = parser.parse_args(argv)
    chosen: tuple[str, ...] | None = None
    if args.only:
        chosen = tuple(name.strip() for name in args.only.split(",") if name.strip())
        unknown = sorted(set(chosen) - set(SCENARIOS))
        if unknown:
            parser.error(f"unknown scenario {unknown[0]!r}; choose from {', '.join(SCENARIOS)}")
    plan = plan_for(args.quick, chosen, args.reps)
    if args.profile and "profile" not in plan.scenarios:
        plan = plan_for(args.quick, (*plan.scenarios, "profile"), args.reps)
    return plan


async def run(plan: Plan) -> dict[str, Any]:
    results: dict[str, Any] = {"notes": NOTES}
    await db.prepare()
    conn = await db.connect()
    try:
        async with LocalBroker() as broker:
            bench = Bench(plan, broker, conn)
            for name in plan.scenarios:
                began = time.perf_counter()
                print(f"== {name}", flush=True)
                if name == "drain":
                    results["drain1"] = await throughput.drain(bench, 1)
                    results["drain2"] = await throughput.drain(bench, 2)
                elif name == "e2e":
                    results["e2e"] = await throughput.e2e(bench)
                elif name == "persist":
                    results["persist"] = await throughput.persist(bench)
                elif name == "latency":
                    results["latency"], results["latency_given_up"] = await latency.latency(bench)
                elif name == "explain":
                    results["explain"] = await explain(bench)
                elif name == "profile":
                    results["profile"] = await profile(bench)
                print(f"   ({time.perf_counter() - began:.0f} s)", flush=True)
    finally:
        await db.truncate(conn)
        await conn.close()
    return results


def show_explain(found: dict[str, Any]) -> None:
    print(f"\nClaim query plan at {found['rows']:,} rows ({found['pending']:,} pending):")
    for name, plan in found["plans"].items():
        seq = "SEQ SCAN on the outbox" if found["seq_scan_on_outbox"][name] else "index only"
        print(f"-- {name} plan ({seq}):")
        print("\n".join(f"   {line}" for line in plan))


def show_profile(found: dict[str, Any]) -> None:
    for impl, summary in found.items():
        if not summary.get("samples"):
            continue
        print(
            f"\nRelay profile, {impl}: {summary['samples']} samples at 200/s, "
            f"{summary['idle_pct']}% idle in epoll; shares below are of the busy samples"
        )
        for kind in ("layers_pct", "own_pct", "cumulative_pct"):
            print(f"  top by {kind.removesuffix('_pct')}:")
            for name, pct in summary[kind][:10]:
                print(f"    {pct:5.1f}%  {name}")


def main(argv: list[str] | None = None) -> int:
    plan = parse(argv)
    began = time.perf_counter()
    results = asyncio.run(run(plan))
    rows = lines(results, plan)
    print()
    print(table(rows))
    for note in results["notes"]:
        print(f"\n{note}")
    if "explain" in results:
        show_explain(results["explain"])
    if results.get("profile"):
        show_profile(results["profile"])
    path = write_json(results, plan, rows)
    print(f"\nwritten to {path} ({time.perf_counter() - began:.0f} s in all)")
    return 0
