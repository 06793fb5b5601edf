"""Trace context across the outbox: captured at record time, restored while consuming.

The application sees W3C `traceparent` strings only; adapters.tracing binds them to
OpenTelemetry when it is installed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

import structlog

TRACEPARENT_HEADER = "traceparent"
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")


def valid_traceparent(value: str | None) -> str | None:
    """The value when it is a well-formed W3C traceparent, else None (the spec says an
    invalid one is ignored, not an error)."""
    if value is None:
        return None
    value = value.strip().lower()
    match = _TRACEPARENT.fullmatch(value)
    if match is None or value.startswith("ff") or set(match[1]) == {"0"} or set(match[2]) == {"0"}:
        return None
    return value


class Tracing(Protocol):
    def current(self) -> str | None:
        """The active trace context as a traceparent, or None when nothing is traced."""
        ...

    def restored(self, traceparent: str | None) -> AbstractContextManager[None]:
        """Make `traceparent` the active context, and put it in the log context, while a
        message is handled."""
        ...


class LogContextOnly(Tracing):
    """Without OpenTelemetry: nothing to capture; a stored traceparent still reaches logs."""

    def current(self) -> str | None:
        return None

    def restored(self, traceparent: str | None) -> AbstractContextManager[None]:
        return bound_traceparent(traceparent)


@contextmanager
def bound_traceparent(traceparent: str | None) -> Iterator[None]:
    if traceparent is None:
        yield
        return
    with structlog.contextvars.bound_contextvars(traceparent=traceparent):
        yield
