"""What runs beside the relay, every so often, until it stops."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from chat_outbox.application.errors import StoreUnavailable

log = structlog.get_logger(__name__)


async def repeat(
    what: str,
    round_: Callable[[], Awaitable[None]],
    stopping: asyncio.Event,
    every: float,
    *,
    wait_first: bool = False,
) -> None:
    """Run `round_` every `every` seconds until `stopping` is set. A chore must not take
    the relay down with it: an unreachable database is a warning, anything else (a
    statement timeout, say) is logged with its traceback; both are tried next round."""
    if wait_first:
        await wait_or_stop(stopping, every)
    while not stopping.is_set():
        try:
            await round_()
        except StoreUnavailable as error:
            log.warning(f"{what}_store_unavailable", error=str(error), retry_in_s=every)
        except Exception:
            log.exception(f"{what}_failed", retry_in_s=every)
        await wait_or_stop(stopping, every)


async def wait_or_stop(stopping: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
