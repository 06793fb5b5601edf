"""How big a chaos run is and how many faults of each kind it injects."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Plan:
    messages: int = 20_000
    conversations: int = 200
    seed: int = 0
    fault_phase_s: float = 100.0
    """Faults are injected (and messages recorded) for this long; then the run drains."""
    relay_kills: int = 10
    consumer_kills: int = 10
    broker_pauses: int = 3
    broker_restarts: int = 1
    db_terminations: int = 4
    pause_s: tuple[float, float] = (5.0, 15.0)
    sweep_published_after_s: float = 30.0
    stall_timeout_s: float = 180.0
    """The drain fails when the consumed count has not grown for this long."""
    relays: int = 2
    consumers: int = 2


QUICK = Plan(
    messages=1_000,
    conversations=30,
    fault_phase_s=18.0,
    relay_kills=2,
    consumer_kills=2,
    broker_pauses=1,
    broker_restarts=1,
    db_terminations=2,
    pause_s=(3.0, 5.0),
    sweep_published_after_s=8.0,
    stall_timeout_s=90.0,
)


def plan_for(
    *, quick: bool, seed: int, messages: int | None = None, conversations: int | None = None
) -> Plan:
    plan = replace(QUICK if quick else Plan(), seed=seed)
    if messages is not None:
        plan = replace(plan, messages=messages)
    if conversations is not None:
        plan = replace(plan, conversations=conversations)
    return plan
