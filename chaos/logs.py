"""Figures from the processes' JSON logs: per-batch lines survive a SIGKILL, totals do not."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

SUMMED = {
    "consume_batch": ("persisted", "duplicates", "dead_lettered"),
    "relay_batch": ("published", "retried", "dead", "unchanged"),
    "stale_published_swept": ("rows",),
}
COUNTED = ("relay_store_unavailable", "relay_bus_unavailable", "persist_failed_retrying",
           "kafka_fetch_failed", "kafka_consumer_unavailable", "command_crashed")  # fmt: skip


def summarise(paths: list[Path]) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if not isinstance(entry, dict):
                continue
            event = entry.get("event")
            for field in SUMMED.get(str(event), ()):
                totals[f"{event}.{field}"] += int(entry.get(field) or 0)
            if event in COUNTED:
                totals[str(event)] += 1
    return dict(sorted(totals.items()))
