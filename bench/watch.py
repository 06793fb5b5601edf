"""Time a run by polling the database every 50 ms with cheap EXISTS probes."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import asyncpg  # type: ignore[import-untyped]

from bench import db
from bench.procs import Proc, machine_cpu
from bench.settings import POLL_S


@dataclass(frozen=True)
class Timing:
    started: float
    first: float
    """When the first output row was seen."""
    first_count: int
    """Output rows already there at that moment."""
    done: float
    first_cpu: float = 0.0
    """The processes' CPU seconds at that moment (their start-up's)."""
    first_machine: float = 0.0
    """The machine's busy CPU seconds at that moment (procs.machine_cpu)."""

    def rate(self, total: int) -> float:
        """From the processes' start: nothing subtracted."""
        return total / (self.done - self.started)

    def steady_rate(self, total: int) -> float:
        """From the first output row on: start-up and group join excluded."""
        return (total - self.first_count) / max(self.done - self.first, 1e-9)

    @property
    def startup(self) -> float:
        return self.first - self.started


@dataclass(frozen=True)
class Probe:
    """`output` (table, where) has rows once work has come out; `backlog` has none when done."""

    output: tuple[str, str]
    backlog: tuple[str, str]


NEW = f"id >= {db.FIRST_ID}"  # the seeded history rows (consumed, older) are not counted
DRAIN = Probe((db.OUTBOX, "status = 'published'"), (db.OUTBOX, "status = 'pending'"))
E2E = Probe(
    (db.OUTBOX, f"status = 'consumed' AND {NEW}"), (db.OUTBOX, "status IN ('pending', 'published')")
)
PERSIST = Probe((db.HISTORY, "TRUE"), (db.OUTBOX, "status = 'published'"))


async def watch(
    conn: asyncpg.Connection, probe: Probe, procs: list[Proc], started: float, timeout: float
) -> Timing:
    first: float | None = None
    first_count, first_cpu, first_machine = 0, 0.0, 0.0
    deadline = started + timeout
    while True:
        now = time.perf_counter()
        if now > deadline:
            raise TimeoutError(f"not done within {timeout:.0f} s")
        for proc in procs:
            proc.check_alive()
        if first is None and await db.exists(conn, *probe.output):
            first, first_count = now, await db.count(conn, *probe.output)
            first_cpu = sum(v for proc in procs if (v := proc.cpu_seconds()) is not None)
            first_machine, _ = machine_cpu()
        if first is not None and not await db.exists(conn, *probe.backlog):
            done = time.perf_counter()
            return Timing(started, first, first_count, done, first_cpu, first_machine)
        await asyncio.sleep(POLL_S)
