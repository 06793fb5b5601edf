"""Shared steps of the use-case tests, which run against the in-memory fakes."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from chat_outbox.application.record.recording import (
    record_chat_message,
)
from chat_outbox.application.relay.loop import run_relay
from chat_outbox.application.relay.relaying import Relay
from chat_outbox.domain import PublishFailure
from tests.unit.conftest import (
    TOPIC,
    CrashingBus,
    Harness,
    chat,
    failing,
)

TIMEOUT = 0.0
"""Fetch without waiting: every test knows what is on the bus."""


async def fail_relay(harness: Harness, failure: PublishFailure, max_retry: int = 20) -> int:
    """Record one message and relay it into `failure`; return its outbox id."""
    row = await harness.record(max_retry=max_retry)
    harness.bus.fail_with = failing(failure)
    await harness.relay().relay_due()
    harness.bus.fail_with = None
    return row.id


async def make_dead(harness: Harness, conversation_id: str) -> int:
    row = await harness.record(conversation_id)
    harness.bus.fail_with = failing(PublishFailure.fatal("rejected"))
    await harness.relay().relay_due()
    harness.bus.fail_with = None
    return row.id


async def relay_dies_mid_publish(harness: Harness) -> None:
    """A relay with a 60 s lease claims the due rows, then its process dies while publishing."""
    crashing = Relay(harness.claims(timedelta(seconds=60)), CrashingBus(), harness.clock)
    with pytest.raises(RuntimeError, match="relay process killed"):
        await crashing.relay_due()


async def relay_all(harness: Harness) -> None:
    """Relay rounds until nothing is due: a conversation's messages go one per round."""
    await run_relay(harness.relay(), asyncio.Event(), once=True)


async def relay_and_consume(harness: Harness) -> None:
    await relay_all(harness)
    await harness.consumer().consume_batch(TIMEOUT)


async def record_then_fail_business_write(harness: Harness) -> None:
    async with harness.uow() as uow:
        await record_chat_message(
            uow, chat(), topic=TOPIC, clock=harness.clock, event_ids=harness.event_ids
        )
        raise ValueError("business rule violated")
