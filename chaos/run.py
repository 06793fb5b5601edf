"""One chaos run: record while faults fly, drain on progress, then judge."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from pathlib import Path

import attrs

from chaos import database, logs
from chaos.faults import Controller, Fault
from chaos.fleet import Fleet, process_env
from chaos.plan import Plan
from chaos.recorder import Recorded, record
from chaos.verdict import Verdict, judge
from chat_outbox.adapters.kafka import dlq_topic
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.entrypoints.local_broker import LocalBroker

WATCH_EVERY_S = 1.0


@attrs.frozen
class Outcome:
    plan: Plan
    faults: list[Fault]
    verdict: Verdict
    crashes: dict[str, list[str]]
    process_figures: dict[str, int]
    timings: dict[str, float]

    @property
    def passed(self) -> bool:
        return self.verdict.passed and not any(self.crashes.values())


class Stalled(Exception):
    """The consumed count stopped growing before every message was consumed."""


async def run_chaos(plan: Plan, log_dir: Path, database_name: str | None = None) -> Outcome:
    url = database.chaos_url(database_name)
    await database.recreate(url)
    topic = f"chaos-{plan.seed}-{random.Random().getrandbits(24):06x}"
    engine = database.harness_engine(url)
    uow = SqlUnitOfWorkFactory(engine)
    timings: dict[str, float] = {}
    try:
        async with LocalBroker(log_path=log_dir / "broker.log") as broker:
            await broker.create_topic(topic)
            await broker.create_topic(dlq_topic(topic))
            env = process_env(url, broker.bootstrap_servers, topic, plan.sweep_published_after_s)
            fleet = Fleet.of(env, log_dir, plan.relays, plan.consumers)
            controller = Controller(plan, random.Random(plan.seed), fleet, broker, url)
            recorded = Recorded()
            started = time.monotonic()
            await fleet.start_all()
            try:
                drained, stalled = await _faulty_phase_then_drain(
                    plan, uow, topic, fleet, controller, recorded, url
                )
            finally:
                await fleet.stop_all()
            timings["total_s"] = time.monotonic() - started
            timings["drain_after_faults_s"] = drained
        async with database.connection(url) as conn:
            verdict = await judge(conn, uow, recorded)
        if stalled is not None:
            verdict.violations.insert(0, stalled)
    finally:
        await engine.dispose()
    figures = logs.summarise(fleet.log_files("relay") + fleet.log_files("consume"))
    crashes = {member.name: member.crashes for member in fleet.members}
    return Outcome(plan, controller.log, verdict, crashes, figures, timings)


async def _faulty_phase_then_drain(
    plan: Plan,
    uow: SqlUnitOfWorkFactory,
    topic: str,
    fleet: Fleet,
    controller: Controller,
    recorded: Recorded,
    url: str,
) -> tuple[float, str | None]:
    """Record and inject faults together; then wait, on progress, until all are consumed.
    Returns how long the drain took after the last fault, and why it stalled, if it did."""
    watchdog = asyncio.create_task(_watch(fleet, controller))
    try:
        recording = record(
            uow, topic, plan.messages, plan.conversations, plan.fault_phase_s * 0.9, recorded
        )
        await asyncio.gather(recording, controller.run())
        faults_done = time.monotonic()
        try:
            await _drain(url, recorded.count, plan.stall_timeout_s)
        except Stalled as stalled:
            return time.monotonic() - faults_done, str(stalled)
        return time.monotonic() - faults_done, None
    finally:
        watchdog.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watchdog


async def _watch(fleet: Fleet, controller: Controller) -> None:
    """Restart (and note) any process that exited without being killed by the controller."""
    while True:
        await asyncio.sleep(WATCH_EVERY_S)
        await fleet.revive(excluding=controller.down)


async def _drain(url: str, expected: int, stall_timeout_s: float) -> None:
    last, last_change = -1, time.monotonic()
    async with database.connection(url) as conn:
        while True:
            consumed = await database.consumed_count(conn)
            if consumed >= expected:
                return
            if consumed != last:
                last, last_change = consumed, time.monotonic()
            elif time.monotonic() - last_change > stall_timeout_s:
                raise Stalled(
                    f"stuck at {consumed}/{expected} consumed for {stall_timeout_s:.0f} s"
                )
            await asyncio.sleep(WATCH_EVERY_S)
