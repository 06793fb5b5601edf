"""The relay's loop: claim-publish-write rounds until stopped, waiting for work between
them (a wake-up or an adaptive poll), and the stale-published sweep that runs beside it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import timedelta

import attrs
import structlog

from chat_outbox.application.errors import StoreUnavailable
from chat_outbox.application.operate.chores import repeat, wait_or_stop
from chat_outbox.application.operate.operations import sweep_stale_published
from chat_outbox.application.ports import Clock, UnitOfWorkFactory, Wakeups
from chat_outbox.application.relay.relaying import Relay, RelayReport, is_trickle
from chat_outbox.application.tally import add_up
from chat_outbox.domain import RetryPolicy

log = structlog.get_logger(__name__)


@attrs.frozen
class Polling:
    """Adaptive polling: the interval doubles while idle, from `minimum` to `maximum`, and
    snaps back on work or a wake-up. `coalesce` waits a moment after a wake-up so a burst
    of commits becomes one batch instead of many tiny ones. `pace`: at a trickle (a round
    under a quarter full), rounds start at most this often; a backlog goes back to back."""

    minimum: float = 0.05
    maximum: float = 1.0
    coalesce: float = 0.005
    pace: float = 0.01


async def run_relay(
    relay: Relay,
    stopping: asyncio.Event,
    *,
    polling: Polling | None = None,
    wakeups: Wakeups | None = None,
    once: bool = False,
    outage_policy: RetryPolicy | None = None,
    backlog: Backlog | None = None,
) -> RelayReport:
    """Relay until `stopping` is set (or, with once, until nothing is due). The round in
    progress when the stop comes is finished first, and the claims hand back what they
    hold. An unreachable database is waited out. `backlog` hears how full each round's
    claim was."""
    polling = polling or Polling()
    totals = RelayReport()
    outage = outage_policy or RetryPolicy(cap=timedelta(seconds=30))
    failures = 0
    interval = polling.minimum
    while not stopping.is_set():
        began = time.monotonic()
        try:
            report = await relay.relay_due()
        except StoreUnavailable as error:
            failures += 1
            delay = outage.ceiling(failures).total_seconds()
            log.warning("relay_store_unavailable", error=str(error), retry_in_s=delay)
            await wait_or_stop(stopping, delay)
            continue
        totals = add_up(totals, report)
        if backlog is not None:
            backlog.saw(report.claimed, relay.batch_size)
        if report.claimed and report.retried == report.claimed:
            # Every message of a batch failed: the bus itself is down. Back off as a whole
            # (the rows' own backoff does not grow for an unreachable bus).
            failures += 1
            delay = outage.ceiling(failures).total_seconds()
            log.warning("relay_bus_unavailable", retry_in_s=delay, batch=report.claimed)
            await wait_or_stop(stopping, delay)
        elif report.claimed:
            failures = 0
        if report.published or (report.claimed and not once):
            # More may be due: the settled rows' successors are claimable now. (With once,
            # a round that published nothing ends the drain: the bus may be down.)
            interval = polling.minimum
            rest = polling.pace - (time.monotonic() - began)
            if not once and rest > 0 and is_trickle(report.claimed, relay.batch_size):
                # A trickle: back-to-back rounds of a few rows each would cost a round's
                # round trips per few rows, and the CPU they take delays every message.
                await wait_or_stop(stopping, rest)
            continue
        if once:
            break
        if await _idle(stopping, wakeups, interval):
            interval = polling.minimum
            await wait_or_stop(stopping, polling.coalesce)
        else:
            interval = min(interval * 2, polling.maximum)
    await _stop(relay)
    return totals


@attrs.define
class Backlog:
    """What the first lane's rounds say about the backlog: `full` after a full batch,
    `drained` after one under a quarter full (or when the first lane stops)."""

    full: asyncio.Event = attrs.field(factory=asyncio.Event)
    drained: asyncio.Event = attrs.field(factory=asyncio.Event)

    def saw(self, claimed: int, batch_size: int) -> None:
        if claimed >= batch_size:
            self.drained.clear()
            self.full.set()
        elif is_trickle(claimed, batch_size):
            self.full.clear()
            self.drained.set()


async def run_relay_lanes(
    relays: Sequence[Relay],
    stopping: asyncio.Event,
    *,
    polling: Polling | None = None,
    wakeups: Wakeups | None = None,
    once: bool = False,
) -> RelayReport:
    """Relay with the first relay as run_relay does; the others are extra lanes for a
    backlog. A round mostly waits on the database and the bus, and a lane, with its own
    transaction and share of the conversations, works meanwhile. The lanes join when the
    first relay claims a full batch and leave (handing their shares back) once its batches
    shrink: at a trickle, one relay is quicker than several splitting each wake-up. With
    once, a lane that joined helps until the first relay is done, then drains what is
    still due, and the call returns when every lane has. If one lane fails, the others are
    stopped."""
    first, *others = relays
    backlog, first_stopped = Backlog(), asyncio.Event()

    async def lead() -> RelayReport:
        try:
            return await run_relay(
                first, stopping, polling=polling, wakeups=wakeups, once=once, backlog=backlog
            )
        finally:
            first_stopped.set()
            backlog.full.set()
            backlog.drained.set()

    async def help_with_backlog(relay: Relay) -> RelayReport:
        totals = RelayReport()
        while True:
            await backlog.full.wait()  # set for good once the first lane stops
            if first_stopped.is_set():
                return totals
            if once:
                # Help until the first lane is done (a claim that comes back empty meanwhile
                # may only have met its locks), then drain what is left.
                totals = add_up(totals, await run_relay(relay, first_stopped, polling=polling))
                return add_up(totals, await run_relay(relay, stopping, polling=polling, once=True))
            totals = add_up(totals, await run_relay(relay, backlog.drained, polling=polling))

    async with asyncio.TaskGroup() as group:
        lanes = [group.create_task(lead())]
        lanes += [group.create_task(help_with_backlog(relay)) for relay in others]
    totals = RelayReport()
    for lane in lanes:
        totals = add_up(totals, lane.result())
    return totals


async def _stop(relay: Relay) -> None:
    try:
        await relay.stop()
    except StoreUnavailable as error:
        # Not lost: what the claims hold comes back when its lease or roster entry ends.
        log.warning("relay_claims_not_handed_back", error=str(error))


async def _idle(stopping: asyncio.Event, wakeups: Wakeups | None, timeout: float) -> bool:
    """Wait for a wake-up, the stop, or the timeout; True when something woke us."""
    if wakeups is None:
        await wait_or_stop(stopping, timeout)
        return False
    woken = asyncio.ensure_future(wakeups.wait(timeout))
    stop = asyncio.ensure_future(stopping.wait())
    done, pending = await asyncio.wait({woken, stop}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    return woken in done and woken.result()


async def run_sweeper(
    uow: UnitOfWorkFactory,
    clock: Clock,
    stopping: asyncio.Event,
    *,
    stale_after: timedelta,
) -> int:
    """Every so often, send rows published but never consumed back to pending, so a broker
    that lost data is recovered from. Several relays may sweep at once: writes are guarded."""
    swept_total = 0

    async def round_() -> None:
        nonlocal swept_total
        swept = await sweep_stale_published(uow, clock, clock.now() - stale_after)
        swept_total += swept
        if swept:
            stale_after_s = stale_after.total_seconds()
            log.warning("stale_published_swept", rows=swept, stale_after_s=stale_after_s)

    every = min(60.0, max(stale_after.total_seconds() / 4, 0.5))
    await repeat("sweep", round_, stopping, every, wait_first=True)
    return swept_total
