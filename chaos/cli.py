"""Parse the options, run chaos (or the resource-bounds measurement), print, exit 0 or 1."""

from __future__ import annotations

import argparse
import asyncio
import random
from pathlib import Path

from chaos.plan import plan_for
from chaos.report import render
from chaos.run import run_chaos

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "chaos-results"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument("--messages", type=int, help="messages to record [20000; quick 1000]")
    parser.add_argument("--conversations", type=int, help="conversations [200; quick 30]")
    parser.add_argument("--seed", type=int, help="RNG seed of the fault schedule [random]")
    parser.add_argument("--quick", action="store_true", help="a short run with fewer faults")
    parser.add_argument(
        "--bounds", action="store_true", help="measure relay RSS with 10k vs 1M pending rows"
    )
    parser.add_argument("--database", help="PostgreSQL database name [chat_outbox_chaos]")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.bounds:
        from chaos.bounds import measure

        print(asyncio.run(measure(args.database)))
        return 0
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    plan = plan_for(
        quick=args.quick, seed=seed, messages=args.messages, conversations=args.conversations
    )
    log_dir = RESULTS / f"seed-{seed}"
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"chaos: seed {seed} (rerun with --seed {seed}); process logs in {log_dir}", flush=True)
    outcome = asyncio.run(run_chaos(plan, log_dir, args.database))
    print(render(outcome), flush=True)
    return 0 if outcome.passed else 1
