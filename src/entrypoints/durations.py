"""Durations and moments as operators type them: 30s, 15m, 12h, 7d, 2w, or ISO 8601 times."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

LONGEST = timedelta(days=100 * 365)
# MariaDB's DATETIME range, the narrowest of the databases: a moment outside it, or one
# whose offset carries it past year 1 or 9999, fails only in the query otherwise.
EARLIEST = datetime(1000, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*")


def parse_duration(text: str) -> timedelta:
    """An amount with a unit; raises ValueError with a message fit for one line."""
    match = _DURATION.fullmatch(text)
    if not match:
        raise ValueError(f"{text!r:.40} is not a duration like 30s, 15m, 12h or 7d")
    seconds = float(match[1]) * UNITS[match[2]]
    if seconds > LONGEST.total_seconds():
        # Beyond that, "that long ago" falls before year 1 and datetime overflows.
        raise ValueError(f"{text!r:.40} is longer than {LONGEST.days // 365} years")
    return timedelta(seconds=seconds)


def parse_moment(text: str) -> datetime | timedelta:
    """An ISO 8601 time (UTC unless it says otherwise), or a duration meaning that long ago."""
    if _DURATION.fullmatch(text):
        return parse_duration(text)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r:.40} is neither an ISO 8601 time nor a duration ago like 2h"
        ) from None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    try:
        in_range = EARLIEST <= moment.astimezone(UTC) <= LATEST
    except OverflowError:
        in_range = False
    if not in_range:
        raise ValueError(f"{text!r:.40} is not between years 1000 and 9999 in UTC")
    return moment
