"""Claim durations as our relays report them: the `claim_ms` of each `relay_batch` log line
(JSON, info level), read back from the processes' logs after a run."""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from bench.procs import Proc

LOG_LEVEL = "info"
"""The level at which our relay logs one `relay_batch` line per batch."""


def claim_times(procs: list[Proc]) -> list[float]:
    """Every batch's claim time (ms) in these processes' logs, in log order."""
    return [float(fields["claim_ms"]) for fields in _batches(procs)]


def claims_during(procs: list[Proc], start: datetime, end: datetime) -> list[float]:
    """The claim times (ms) of the claims that ran, at least in part, between `start` and
    `end` (UTC). A `relay_batch` line is written after the batch's settle, so its claim ran
    from timestamp - (claim + publish + settle) to timestamp - (publish + settle)."""
    found: list[float] = []
    for fields in _batches(procs):
        try:
            logged = datetime.fromisoformat(fields["timestamp"].replace("Z", "+00:00"))
            after = float(fields["publish_ms"]) + float(fields["settle_ms"])
        except (ValueError, KeyError):
            continue
        claim = float(fields["claim_ms"])
        ended = logged - timedelta(milliseconds=after)
        if ended >= start and ended - timedelta(milliseconds=claim) <= end:
            found.append(claim)
    return found


def _batches(procs: list[Proc]) -> Iterator[dict[str, Any]]:
    """The fields of every `relay_batch` line with a claim time in these processes' logs."""
    for proc in procs:
        for line in proc.log.read_text(errors="replace").splitlines():
            if '"relay_batch"' not in line:
                continue
            try:
                fields = json.loads(line)
            except ValueError:
                continue
            if fields.get("event") == "relay_batch" and "claim_ms" in fields:
                yield fields


def summary(values: list[float]) -> dict[str, Any]:
    """Count, p50, p99 and max of claim times; empty when there were none."""
    if not values:
        return {"batches": 0}
    cuts = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else None
    return {
        "batches": len(values),
        "p50_ms": cuts[49] if cuts else values[0],
        "p99_ms": cuts[98] if cuts else values[0],
        "max_ms": max(values),
        "over_50_ms": sum(1 for v in values if v > 50),
    }
