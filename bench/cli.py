"""Parse the options, run the chosen scenarios against one local broker, print and save."""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import replace
from typing import Any

from bench import db, latency, throughput
from bench.ceiling import ceiling
from bench.explain import explain
from bench.fresh import fresh
from bench.growth import growth
from bench.profiling import profile
from bench.report import latency_table, lines, table, write_json
from bench.runs import Bench
from bench.settings import SCENARIOS, Plan, plan_for
from chat_outbox.entrypoints.local_broker import LocalBroker

NOTES = [
    "Drain: 'minimal loop' is the baseline relay without the producer's linger; 'raw produce' "
    "is aiokafka sending the same records with no database (the ceiling).",
    "Fresh table: the outbox VACUUM ANALYZEd empty, autovacuum on, rows loaded while our "
    "relay drains; claim times are the relay's own (relay_batch claim_ms).",
    "Each run seeds 10k older consumed rows before its own, then ANALYZEs (autovacuum is off "
    "on the bench tables, so no plan changes mid-run); 'claim_scan' in the JSON is each "
    "run's claim plan.",
    "Latency: one row per transaction up to 1,000/s, rate/1,000 rows per transaction above "
    "(4 recorder connections; INSERT + pg_notify in one statement); created_at = the "
    "statement's now(), consumed_at = the consumer's. The latency table pools every "
    "repetition's rows per rate.",
    "Consumer persist is timed from the first history row (group join excluded).",
]


EPILOG = (
    "The default run is every scenario but rebalance, growth and profile; those run only when "
    "named in --only (rebalance: a consumer joining mid-run at 1,000/s, about 2 minutes; "
    "growth: drains with 10k and 1M older rows in the outbox, about a minute; add "
    "--history 10000000 for 10M, several minutes and about 10 GB)."
)


def parse(argv: list[str] | None) -> Plan:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__, epilog=EPILOG)
    parser.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--profile", action="store_true", help="also profile the relays")
    parser.add_argument("--reps", type=int, help="repetitions per scenario")
    parser.add_argument("--rates", help="comma-separated latency rates (msg/s)")
    parser.add_argument("--history", help="comma-separated older-row counts for growth")
    args = parser.parse_args(argv)
    chosen: tuple[str, ...] | None = None
    if args.only:
        chosen = tuple(name.strip() for name in args.only.split(",") if name.strip())
        unknown = sorted(set(chosen) - set(SCENARIOS))
        if unknown:
            parser.error(f"unknown scenario {unknown[0]!r}; choose from {', '.join(SCENARIOS)}")
    plan = plan_for(args.quick, chosen, args.reps)
    if args.rates:
        plan = replace(plan, latency_rates=tuple(int(r) for r in args.rates.split(",") if r))
    if args.history:
        counts = tuple(int(n) for n in args.history.split(",") if n)
        plan = replace(plan, growth_history=counts)
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
                    results["ceiling"] = await ceiling(bench)
                elif name == "fresh":
                    results["fresh"] = await fresh(bench)
                elif name == "growth":
                    results["growth"] = await growth(bench)
                elif name == "e2e":
                    results["e2e"] = await throughput.e2e(bench)
                elif name == "persist":
                    results["persist"] = await throughput.persist(bench)
                elif name == "latency":
                    results["latency"] = await latency.latency(bench)
                elif name == "rebalance":
                    results["rebalance"] = await latency.rebalance(bench)
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
    for name in ("latency", "rebalance"):
        if name in results:
            print(f"\n{name}:")
            print(latency_table(results[name], passing=name == "latency"))
    for note in results["notes"]:
        print(f"\n{note}")
    if "explain" in results:
        show_explain(results["explain"])
    if results.get("profile"):
        show_profile(results["profile"])
    path = write_json(results, plan, rows)
    print(f"\nwritten to {path} ({time.perf_counter() - began:.0f} s in all)")
    return 0
