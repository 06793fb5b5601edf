"""A relay that locks its claims: one transaction per round, and the loop goes on while
each round releases the next heads."""

from __future__ import annotations

import asyncio

import pytest

from application.relaying import run_relay
from domain import OutboxStatus
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
    """Each round publishes one head per conversation; `--once` keeps going until the whole
    conversation is out, in order."""
    rows = [await harness.record("long", f"m{n}") for n in range(4)]
    report = await run_relay(harness.relay(lease=None), asyncio.Event(), once=True)
    assert report.published == 4
    assert harness.published_event_ids() == [row.event_id for row in rows]
