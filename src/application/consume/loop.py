"""The consumer's loop: receive, write and acknowledge batches until stopped or idle.

Batches overlap: the next one is fetched and decoded while earlier ones are written, and
up to `Consumer.writes` batches are written at once, each in its own transaction, so the
database's round trips hide the fetch, the decode and each other. Acknowledgements stay
in order: a batch is acknowledged only after its own commit and every earlier batch's
acknowledgement, so no committed offset ever passes an unwritten record. (History is
read back in recording order, whatever order the writes commit in.)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import Any

import structlog

from chat_outbox.application.consume.consuming import (
    Consumer,
    ConsumeReport,
    Received,
    Written,
    describe,
)
from chat_outbox.application.tally import add_up

log = structlog.get_logger(__name__)

Writing = deque[tuple[Received, "asyncio.Task[Written]"]]


async def run_consumer(
    consumer: Consumer, *, idle_exit: float | None = None, poll_timeout: float = 1.0
) -> ConsumeReport:
    """Consume until `consumer.stopping` is set, or until idle for `idle_exit` seconds.
    A batch received when the stop comes is still written and acknowledged (it may hold
    dead-lettered records); so is every batch being written."""
    totals = ConsumeReport()
    idle_since: float | None = None  # starts at the first empty fetch, not during the join
    receiving: asyncio.Task[Received | None] | None = None
    ready: Received | None = None
    """Received while `writes` batches were being written: it waits for the oldest."""
    writing: Writing = deque()
    try:
        while True:
            if ready is not None and len(writing) < consumer.writes:
                writing.append((ready, asyncio.ensure_future(consumer.write(ready))))
                ready = None
            if receiving is None and ready is None and not consumer.stopping.is_set():
                receiving = asyncio.ensure_future(consumer.receive(poll_timeout))
            if receiving is None and ready is None and not writing:
                break
            await asyncio.wait(
                [task for task in (receiving, _oldest(writing)) if task is not None],
                return_when=asyncio.FIRST_COMPLETED,
            )
            if receiving is not None and receiving.done():
                ready, receiving = receiving.result(), None
                if ready is not None:
                    idle_since = None
                elif not writing:
                    now = time.monotonic()
                    idle_since = now if idle_since is None else idle_since
                    if idle_exit is not None and now - idle_since >= idle_exit:
                        log.info("consumer_idle_exit", idle_s=idle_exit)
                        break
            while writing and writing[0][1].done():
                received, task = writing[0]
                written = task.result()  # a failed write stays in `writing`, unacknowledged
                writing.popleft()
                totals = add_up(totals, await consumer.finish(received, written))
    except BaseException:
        await _abandon(receiving, writing, ready)
        raise
    return totals


def _oldest(writing: Writing) -> asyncio.Task[Written] | None:
    return writing[0][1] if writing else None


async def _abandon(
    receiving: asyncio.Task[Received | None] | None, writing: Writing, ready: Received | None
) -> None:
    """After a failure: drop the batch being received and the one waiting, and let the
    writes in flight end (each commits or rolls back whole) without acknowledging any of
    them. Everything not acknowledged is delivered again, and history's idempotent insert
    absorbs it."""
    pending: list[asyncio.Future[Any]] = [task for _, task in writing]
    if receiving is not None:
        receiving.cancel()
        pending.append(receiving)
    outcomes: list[Any] = []
    with contextlib.suppress(BaseException):  # a second cancellation: the first error stands
        outcomes = await asyncio.gather(*pending, return_exceptions=True)
    errors = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
    dropped = len(writing) + (ready is not None)
    if dropped:
        log.warning(
            "consumer_batches_unacknowledged",
            batches=dropped,
            failed=len(errors),
            first_error=describe(errors[0]) if errors else None,
        )
