"""Kafka's default key partitioning (murmur2, as the Java client), with the hash cached:
aiokafka computes murmur2 in pure Python for every record, and conversation ids repeat."""

from __future__ import annotations

import random
from functools import lru_cache

from aiokafka.partitioner import murmur2


@lru_cache(maxsize=65536)
def _positive_hash(key: bytes) -> int:
    return int(murmur2(key)) & 0x7FFFFFFF


def cached_partitioner(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """The same partition as aiokafka's DefaultPartitioner for every key."""
    if key is None:
        return random.choice(available or all_partitions)
    return all_partitions[_positive_hash(key) % len(all_partitions)]
