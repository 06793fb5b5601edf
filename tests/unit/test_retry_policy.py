"""The retry policy (exponential, capped, full jitter) and publish failures."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chat_outbox.domain import PublishFailure, RetryPolicy
from chat_outbox.domain.retry import MAX_ERROR_LENGTH

pytestmark = pytest.mark.unit


@settings(max_examples=200, deadline=None)
@given(
    attempt=st.integers(min_value=1, max_value=200),
    fraction=st.floats(min_value=0.0, max_value=1.0),
)
def test_backoff_is_within_zero_and_ceiling(attempt: int, fraction: float) -> None:
    """Full jitter: the delay is between zero and the attempt's ceiling, inclusive."""
    policy = RetryPolicy(rand=lambda: fraction)

    assert timedelta(0) <= policy.backoff(attempt) <= policy.ceiling(attempt)


def test_backoff_with_default_randomness_stays_within_ceiling() -> None:
    """The default random source also yields delays in [0, ceiling]."""
    policy = RetryPolicy()

    delays = [policy.backoff(4) for _ in range(200)]

    assert all(timedelta(0) <= d <= timedelta(seconds=4) for d in delays)
    assert len(set(delays)) > 1


def test_ceiling_doubles_from_base_then_caps() -> None:
    """Ceilings go base, 2*base, 4*base, ... until the cap, then stay at the cap."""
    policy = RetryPolicy(base=timedelta(seconds=1), cap=timedelta(seconds=10))

    ceilings = [policy.ceiling(attempt).total_seconds() for attempt in range(1, 8)]

    assert ceilings == [1, 2, 4, 8, 10, 10, 10]


def test_default_policy_starts_at_half_a_second_and_caps_at_five_minutes() -> None:
    """The default policy's first ceiling is 500 ms and its last is five minutes."""
    policy = RetryPolicy()

    assert (policy.ceiling(1), policy.ceiling(50)) == (
        timedelta(milliseconds=500),
        timedelta(minutes=5),
    )


def test_randomness_of_one_gives_exactly_the_ceiling() -> None:
    """Injected randomness 1.0 makes the delay the ceiling itself."""
    policy = RetryPolicy(rand=lambda: 1.0)

    assert policy.backoff(3) == timedelta(seconds=2)


def test_randomness_of_zero_gives_no_delay() -> None:
    """Injected randomness 0.0 makes the delay zero."""
    policy = RetryPolicy(rand=lambda: 0.0)

    assert policy.backoff(3) == timedelta(0)


@pytest.mark.parametrize("attempt", [1_000, 10**9, 2**100])
def test_huge_attempt_numbers_give_the_cap_without_overflow(attempt: int) -> None:
    """An absurd attempt number neither overflows nor exceeds the cap."""
    policy = RetryPolicy(rand=lambda: 1.0)

    assert policy.backoff(attempt) == timedelta(minutes=5)


def test_publish_failure_truncates_very_long_reason() -> None:
    """A reason longer than the limit is cut to the limit, ending in an ellipsis."""
    reason = "x" * (MAX_ERROR_LENGTH * 3)

    failure = PublishFailure(reason)

    assert len(failure.reason) == MAX_ERROR_LENGTH
    assert failure.reason == "x" * (MAX_ERROR_LENGTH - 1) + "…"


def test_publish_failure_keeps_reason_at_the_limit() -> None:
    """A reason exactly at the limit is kept whole."""
    reason = "y" * MAX_ERROR_LENGTH

    assert PublishFailure(reason).reason == reason


def test_fatal_publish_failure_is_not_retryable() -> None:
    """PublishFailure.fatal marks the failure as one retrying cannot help."""
    assert PublishFailure.fatal("too big").retryable is False
    assert PublishFailure("timeout").retryable is True
