"""Durations and moments as operators type them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from chat_outbox.entrypoints.durations import parse_duration, parse_moment

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("12h", 43200), ("7d", 604800), ("2w", 1209600), ("1.5h", 5400)],
)
def test_a_duration_is_an_amount_and_a_unit(text: str, seconds: float) -> None:
    """Each unit multiplies the amount into seconds."""
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["7", "7x", "d", "-1d", "7 days", ""])
def test_anything_else_is_refused_with_an_example(text: str) -> None:
    """A bare number, an unknown unit or words are refused, and the message shows the form."""
    with pytest.raises(ValueError, match="is not a duration like 30s, 15m, 12h or 7d"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["99999999999w", "36501d", "1e400s"])
def test_an_absurdly_long_duration_is_refused_not_overflowed(text: str) -> None:
    """Past 100 years "that long ago" would overflow datetime: a one-line refusal instead."""
    with pytest.raises(ValueError, match=r"longer than 100 years|not a duration"):
        parse_duration(text)


def test_a_moment_is_an_iso_time_in_utc_unless_it_says_otherwise() -> None:
    """A naive ISO time is UTC; one with an offset keeps it."""
    assert parse_moment("2026-03-04T05:06") == datetime(2026, 3, 4, 5, 6, tzinfo=UTC)
    plus_two = timezone(timedelta(hours=2))
    assert parse_moment("2026-03-04T05:06+02:00") == datetime(2026, 3, 4, 5, 6, tzinfo=plus_two)


def test_a_moment_can_be_a_duration_ago() -> None:
    """`2h` is returned as the duration, for the caller to subtract from its clock."""
    assert parse_moment("2h") == timedelta(hours=2)
    with pytest.raises(ValueError, match="neither an ISO 8601 time nor a duration ago"):
        parse_moment("yesterday")
