"""The fault controller: a seeded schedule of kills, broker pauses and restarts, and dropped
database connections, injected while traffic flows, each one logged."""

from __future__ import annotations

import asyncio
import random
import time

import attrs

from chaos.database import terminate_backends
from chaos.fleet import Fleet, Member
from chaos.plan import Plan
from chat_outbox.entrypoints.local_broker import LocalBroker


@attrs.frozen
class Fault:
    at_s: float
    kind: str
    target: str
    detail: str = ""


@attrs.frozen
class Scheduled:
    at_s: float
    kind: str


def schedule(plan: Plan, rng: random.Random) -> list[Scheduled]:
    """Process kills and connection drops at uniform random moments of the fault phase;
    broker pauses and the restart one per slot, so broker faults never overlap."""
    span = plan.fault_phase_s
    anywhere = {
        "kill relay": plan.relay_kills,
        "kill consumer": plan.consumer_kills,
        "terminate db connections": plan.db_terminations,
    }
    events = [
        Scheduled(rng.uniform(0.05, 0.95) * span, kind)
        for kind, count in anywhere.items()
        for _ in range(count)
    ]
    broker = ["pause broker"] * plan.broker_pauses + ["restart broker"] * plan.broker_restarts
    rng.shuffle(broker)
    slot = span / max(len(broker), 1)
    for index, kind in enumerate(broker):
        events.append(Scheduled(slot * index + rng.uniform(0.1, 0.4) * slot, kind))
    return sorted(events, key=lambda event: event.at_s)


@attrs.define
class Controller:
    plan: Plan
    rng: random.Random
    fleet: Fleet
    broker: LocalBroker
    database_url: str
    started: float = attrs.Factory(time.monotonic)
    log: list[Fault] = attrs.Factory(list)
    down: set[str] = attrs.Factory(set)

    async def run(self) -> None:
        """Inject the whole schedule; returns when the last fault (and restart) is done."""
        tasks = [asyncio.create_task(self._at(event)) for event in schedule(self.plan, self.rng)]
        await asyncio.gather(*tasks)

    def _now(self) -> float:
        return round(time.monotonic() - self.started, 2)

    async def _at(self, event: Scheduled) -> None:
        await asyncio.sleep(max(0.0, event.at_s - (time.monotonic() - self.started)))
        if event.kind.startswith("kill"):
            await self._kill(event.kind, "relay" if event.kind.endswith("relay") else "consume")
        elif event.kind == "pause broker":
            await self._pause()
        elif event.kind == "restart broker":
            at = self._now()
            await self.broker.restart()
            self.log.append(Fault(at, event.kind, "broker", f"back after {self._now() - at:.1f} s"))
        else:
            at = self._now()
            killed = await terminate_backends(self.database_url)
            self.log.append(Fault(at, event.kind, "postgresql", f"{killed} backends"))

    async def _kill(self, kind: str, command: str) -> None:
        alive = [m for m in self.fleet.role(command) if m.name not in self.down]
        if not alive:
            self.log.append(Fault(self._now(), kind, "-", "skipped: all already down"))
            return
        member: Member = self.rng.choice(alive)
        delay = self.rng.uniform(0.5, 3.0)
        self.down.add(member.name)
        try:
            at = self._now()
            await self.fleet.kill(member)
            await asyncio.sleep(delay)
            await self.fleet.start(member)
            self.log.append(Fault(at, kind, member.name, f"SIGKILL, restarted after {delay:.1f} s"))
        finally:
            self.down.discard(member.name)

    async def _pause(self) -> None:
        seconds = self.rng.uniform(*self.plan.pause_s)
        at = self._now()
        self.broker.pause()
        try:
            await asyncio.sleep(seconds)
        finally:
            self.broker.resume()
        self.log.append(Fault(at, "pause broker", "broker", f"SIGSTOP {seconds:.1f} s, SIGCONT"))
