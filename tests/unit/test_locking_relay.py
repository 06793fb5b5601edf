"""A relay that locks its claims: one transaction per round, and the loop goes on while
each round releases the next heads."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from chat_outbox.application.relay.loop import run_relay
from chat_outbox.domain import OutboxStatus, PublishFailure, RetryPolicy
from tests.unit.conftest import Harness

pytestmark = pytest.mark.unit


async def test_a_locking_round_publishes_and_writes_outcomes_in_one_go(harness: Harness) -> None:
    """relay_due with locks leaves nothing in flight: the published row is already marked."""
    row = await harness.record("a")
    report = await harness.relay(lease=None).relay_due()
    assert (report.claimed, report.published) == (1, 1)
    assert harness.status(row.id) is OutboxStatus.PUBLISHED


async def test_once_with_locks_drains_a_conversation_longer_than_one_round(
    harness: Harness,
) -> None:
    """Rounds of two rows each; `--once` keeps going until the whole conversation is out,
    in order."""
    rows = [await harness.record("long", f"m{n}") for n in range(4)]
    report = await run_relay(harness.relay(batch_size=2, lease=None), asyncio.Event(), once=True)
    assert report.published == 4
    assert harness.published_event_ids() == [row.event_id for row in rows]


async def test_once_makes_one_round_and_exits_while_the_bus_is_down(harness: Harness) -> None:
    """With every publish failing and the row due again at once, `--once` stops after the
    round that published nothing instead of retrying until the broker is back."""
    row = await harness.record("a")
    harness.policy = RetryPolicy(rand=lambda: 0.0)  # no backoff: the row is due again at once
    harness.bus.fail_with = lambda record: PublishFailure.unavailable("broker down")
    outage = RetryPolicy(base=timedelta(0), cap=timedelta(0))
    relay = harness.relay(lease=None)
    report = await asyncio.wait_for(
        run_relay(relay, asyncio.Event(), once=True, outage_policy=outage), 5
    )
    assert (report.claimed, report.retried, report.published) == (1, 1, 0)
    assert harness.status(row.id) is OutboxStatus.PENDING
