"""Readiness: can this process reach what it depends on (the database, the bus)?"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Protocol

OK = "ok"


class Probe(Protocol):
    async def __call__(self) -> None:
        """Return when the dependency answers; raise, with a reason, when it does not."""
        ...


async def readiness(probes: Mapping[str, Probe], timeout: float) -> dict[str, str]:
    """Each probe's verdict, run concurrently: "ok", or why it failed."""
    names = list(probes)
    results = await asyncio.gather(
        *(asyncio.wait_for(probes[name](), timeout) for name in names), return_exceptions=True
    )
    return {name: _verdict(result, timeout) for name, result in zip(names, results, strict=True)}


def _verdict(result: object, timeout: float) -> str:
    if isinstance(result, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(result, BaseException):
        if isinstance(result, asyncio.CancelledError):
            raise result
        return f"{type(result).__name__}: {result}".strip().rstrip(":")[:300]
    return OK


async def always_ready() -> None:
    """The probe of a dependency this process does not use."""
