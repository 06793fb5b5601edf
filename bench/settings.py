"""What a run measures and how big: the plan for full and quick runs, and fixed constants."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench-results"
LOGS = RESULTS / "logs"
SERVER_DSN = os.environ.get("BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
DATABASE = "chat_outbox_bench"
PARTITIONS = 6
BIZ_TYPE = "chat_history_persist"
NOTIFY_CHANNEL = "bench_outbox"
POLL_S = 0.05
# The local broker's fast-group tuning, given to our processes and the baseline alike.
KAFKA_TUNING = {
    "fetch_max_wait_ms": 10,
    "session_timeout_ms": 6000,
    "heartbeat_interval_ms": 500,
    "rebalance_timeout_ms": 2000,
}
SCENARIOS = (
    "drain", "fresh", "e2e", "persist", "latency", "explain", "rebalance", "growth", "profile",
)  # fmt: skip
DEFAULT_SCENARIOS = ("drain", "fresh", "e2e", "persist", "latency", "explain")
"""rebalance, growth and profile run only when named in --only."""


def dsn(database: str = DATABASE) -> str:
    return SERVER_DSN.rsplit("/", 1)[0] + "/" + database


def sqlalchemy_url() -> str:
    return dsn().replace("postgresql://", "postgresql+asyncpg://", 1)


@dataclass(frozen=True)
class Plan:
    drain_rows: int = 100_000
    e2e_rows: int = 50_000
    persist_rows: int = 60_000
    drain_reps: int = 2
    reps: int = 3
    fresh_rows: int = 50_000
    latency_rates: tuple[int, ...] = (300, 1_000, 3_000)
    latency_seconds: float = 10.0
    latency_reps: int = 3
    latency_group: int = 1
    """Rows per recorder transaction (1 = one row per commit)."""
    explain_rows: int = 1_000_000
    explain_pending: int = 10_000
    growth_history: tuple[int, ...] = (10_000, 1_000_000)
    """Consumed rows already in the table before a growth drain (10M: --history)."""
    conversations: int = 1_000
    scenarios: tuple[str, ...] = DEFAULT_SCENARIOS
    quick: bool = False


QUICK = Plan(
    drain_rows=20_000,
    e2e_rows=10_000,
    persist_rows=10_000,
    drain_reps=1,
    reps=1,
    fresh_rows=10_000,
    latency_rates=(1_000,),
    latency_seconds=5.0,
    latency_reps=1,
    explain_rows=200_000,
    explain_pending=5_000,
    growth_history=(10_000, 200_000),
    quick=True,
)


def plan_for(quick: bool, scenarios: tuple[str, ...] | None, reps: int | None) -> Plan:
    plan = QUICK if quick else Plan()
    if scenarios is not None:
        plan = replace(plan, scenarios=scenarios)
    if reps is not None:
        plan = replace(plan, drain_reps=reps, reps=reps, latency_reps=reps)
    return plan
