"""The ceiling for a drain: aiokafka producing the drain's own records (our envelopes, keys
and headers, built beforehand) to a fresh topic in batches of 500, acks=all, no linger and
no database. A relay can at best approach this rate on the same machine."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from bench import db, kafka
from bench.data import envelope, make_rows
from bench.runs import Bench

BATCH = 500
IMPL = "raw produce"


async def ceiling(bench: Bench) -> list[dict[str, Any]]:
    """One timed produce of drain_rows records per drain repetition."""
    rows = make_rows(bench.plan.drain_rows, bench.plan.conversations, first_id=db.FIRST_ID)
    created = datetime.now(UTC)
    results = []
    for rep in range(bench.plan.drain_reps):
        topic = await kafka.new_topic(bench.broker, "ceiling")
        messages = [envelope(row, topic, created) for row in rows]
        producer = AIOKafkaProducer(
            bootstrap_servers=bench.broker.bootstrap_servers, acks="all", linger_ms=0
        )
        await producer.start()
        try:
            began = time.perf_counter()
            for start in range(0, len(messages), BATCH):
                futures = [
                    await producer.send(topic, value=value, key=key, headers=headers)
                    for key, value, headers in messages[start : start + BATCH]
                ]
                await asyncio.gather(*futures)
            seconds = time.perf_counter() - began
        finally:
            await producer.stop()
            await kafka.drop_topic(bench.broker, topic)
        rate = len(messages) / seconds
        print(f"  ceiling  {IMPL} {rate:>9,.0f} msg/s ({len(messages):,} records)", flush=True)
        results.append({"impl": IMPL, "rows": len(messages), "rate": rate, "rep": rep})
    return results
