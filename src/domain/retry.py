"""Publish failures and the retry policy: exponential backoff, capped, full jitter."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta

import attrs

MAX_ERROR_LENGTH = 2000


def _truncate(reason: str) -> str:
    return reason if len(reason) <= MAX_ERROR_LENGTH else reason[: MAX_ERROR_LENGTH - 1] + "…"


@attrs.frozen
class PublishFailure:
    """Why a publish failed, and whether trying again can help."""

    reason: str = attrs.field(converter=_truncate)
    retryable: bool = True
    counted: bool = True
    """False when the bus as a whole was unreachable: that says nothing about the message,
    so it does not use up one of its max_retry attempts."""

    @classmethod
    def fatal(cls, reason: str) -> PublishFailure:
        return cls(reason, retryable=False)

    @classmethod
    def unavailable(cls, reason: str) -> PublishFailure:
        return cls(reason, retryable=True, counted=False)


@attrs.frozen
class RetryPolicy:
    """Full jitter: the delay is uniform in [0, min(cap, base * 2**(attempt-1))]."""

    base: timedelta = timedelta(milliseconds=500)
    cap: timedelta = timedelta(minutes=5)
    rand: Callable[[], float] = attrs.field(default=random.random, eq=False)

    def ceiling(self, attempt: int) -> timedelta:
        exponent = min(max(attempt - 1, 0), 64)  # beyond 2**64 the cap wins anyway
        seconds = min(self.cap.total_seconds(), self.base.total_seconds() * 2.0**exponent)
        return timedelta(seconds=seconds)

    def backoff(self, attempt: int) -> timedelta:
        return self.ceiling(attempt) * self.rand()
