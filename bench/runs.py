"""One measured run: seed, start the processes, time them to done, read peak RSS, stop."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from bench import claims, db, plans, procs
from bench.data import Row
from bench.kafka import unique_name
from bench.procs import Proc, Target, machine_cpu
from bench.settings import Plan
from bench.watch import Probe, watch
from chat_outbox.domain import OutboxStatus
from chat_outbox.entrypoints.local_broker import LocalBroker

Attach = Callable[[Proc], Awaitable[Callable[[], Awaitable[None]]]]
"""Given the first relay, start a profiler on it; returns the profiler's stop."""


@dataclass
class Bench:
    """What every scenario needs: the plan, the broker, a database connection."""

    plan: Plan
    broker: LocalBroker
    conn: asyncpg.Connection


@dataclass(frozen=True)
class Spec:
    label: str
    rows: list[Row]
    status: OutboxStatus
    roles: tuple[str, ...]
    """Processes to start, e.g. ("relay", "relay") or ("relay", "consumer")."""
    probe: Probe
    listen: bool = False
    claims: bool = False
    """Our relays log each batch (info level); the result carries their claim times."""
    history: int = db.HISTORY_ROWS
    """Older consumed rows in the table before the run's own."""


async def measure(
    bench: Bench, spec: Spec, impl: str, topic: str, attach: Attach | None = None
) -> dict[str, Any]:
    target = Target(bench.broker.bootstrap_servers, topic, unique_name("group"), spec.label)
    await db.seed(bench.conn, spec.rows, topic, spec.status, bench.plan.conversations, spec.history)
    total = len(spec.rows)
    scan = await plans.outer_scan(bench.conn, impl) if "relay" in spec.roles else None
    started, (machine, _) = time.perf_counter(), machine_cpu()
    level = claims.LOG_LEVEL if spec.claims else None
    running = [
        await procs.spawn(impl, role, target, index, spec.listen, level)
        for index, role in enumerate(spec.roles)
    ]
    detach = await attach(running[0]) if attach is not None else None
    try:
        timing = await watch(bench.conn, spec.probe, running, started, 60 + total / 1000)
        busy_now, _ = machine_cpu()
        busy = busy_now - machine
        elapsed = timing.done - started
        used = procs.usage(running, spec.roles)
        cpu_now = sum(u["cpu_s"] or 0.0 for u in used.values())
    finally:
        if detach is not None:
            await detach()
        await procs.stop(running)
    relays = [p for p, role in zip(running, spec.roles, strict=True) if role == "relay"]
    steady = total - timing.first_count
    return {
        "impl": impl,
        "rows": total,
        "rate": timing.rate(total),
        "steady_rate": timing.steady_rate(total),
        "startup_s": timing.startup,
        "seconds": timing.done - timing.started,
        "peak_rss_mib": {role: u["peak_rss_mib"] for role, u in used.items()},
        "cpu_ms_per_msg": {role: _per_msg(u["cpu_s"], total) for role, u in used.items()},
        "machine_busy": busy / elapsed / (os.cpu_count() or 1),
        "machine_cpu_ms_per_msg": _per_msg(busy, total),
        # After the first publish: start-up's imports excluded.
        "steady_machine_cpu_ms_per_msg": _per_msg(busy_now - timing.first_machine, steady),
        "steady_cpu_ms_per_msg": _per_msg(cpu_now - timing.first_cpu, steady),
        "claim_scan": scan,
        "counts": await db.status_counts(bench.conn, spec.rows[0].id),
        **({"claim_ms": claims.summary(claims.claim_times(relays))} if spec.claims else {}),
    }


def _per_msg(cpu_s: float | None, total: int) -> float | None:
    return None if cpu_s is None else 1000 * cpu_s / total
