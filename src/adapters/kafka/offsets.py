"""Acknowledged offsets waiting to be committed.

A commit is a round trip to the group coordinator, and the consumer loop waits for it
before it hands out the next batch, so a commit per batch would stand on every message's
path. So offsets are committed at
most every interval, and at once when the consumer goes idle, loses partitions or stops.
What is acknowledged but not yet committed is delivered again after a crash, and the
idempotent history write absorbs it."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping

from aiokafka import TopicPartition


class PendingOffsets:
    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval_s = interval_s
        self._clock = clock
        self._offsets: dict[TopicPartition, int] = {}
        self._taken_at = float("-inf")

    def __bool__(self) -> bool:
        return bool(self._offsets)

    def add(self, offsets: Mapping[TopicPartition, int]) -> None:
        for partition, offset in offsets.items():
            self._offsets[partition] = max(self._offsets.get(partition, 0), offset)

    @property
    def due(self) -> bool:
        """A commit interval has passed since offsets were last taken."""
        return self._clock() - self._taken_at >= self._interval_s

    def take(
        self, partitions: Collection[TopicPartition] | None = None
    ) -> dict[TopicPartition, int]:
        """Remove and return the offsets to commit: all, or those of `partitions`."""
        if partitions is None:
            taken, self._offsets = self._offsets, {}
            self._taken_at = self._clock()
            return taken
        return {p: self._offsets.pop(p) for p in partitions if p in self._offsets}
