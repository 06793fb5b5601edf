"""The baseline consumer: getmany(500), one transaction (history insert ON CONFLICT DO
NOTHING + outbox rows consumed), then commit the offsets."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from aiokafka import AIOKafkaConsumer

from bench.baseline_common import arguments, stop_event
from bench.settings import KAFKA_TUNING

INSERT = """
INSERT INTO chat_history_messages
    (event_id, outbox_id, conversation_id, user_id, role, message, recorded_at, persisted_at)
SELECT e, o, c, u, r, m, t, (now() AT TIME ZONE 'UTC')
FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::text[],
            $7::timestamp[]) AS x(e, o, c, u, r, m, t)
ON CONFLICT (event_id) DO NOTHING
"""
MARK = """
UPDATE agent_outbox_messages
SET status = 'consumed', consumed_at = (now() AT TIME ZONE 'UTC')
WHERE id = ANY($1::bigint[])
"""


def columns(values: list[bytes]) -> list[list[Any]]:
    docs = [json.loads(value) for value in values]
    return [
        [d["event_id"] for d in docs],
        [d["outbox_id"] for d in docs],
        [d["payload"]["conversation_id"] for d in docs],
        [d["payload"]["user_id"] for d in docs],
        [d["payload"]["role"] for d in docs],
        [d["payload"]["message"] for d in docs],
        [
            datetime.fromisoformat(d["occurred_at"]).astimezone(UTC).replace(tzinfo=None)
            for d in docs
        ],
    ]


async def main() -> None:
    args = arguments(__doc__ or "")
    stopping = stop_event()
    conn = await asyncpg.connect(args.dsn)
    consumer = AIOKafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=1_048_576,
        **KAFKA_TUNING,
    )
    await consumer.start()
    try:
        while not stopping.is_set():
            batches = await consumer.getmany(timeout_ms=1000, max_records=args.batch)
            values = [m.value for messages in batches.values() for m in messages]
            if not values:
                continue
            data = columns(values)
            async with conn.transaction():
                await conn.execute(INSERT, *data)
                await conn.execute(MARK, data[1])
            await consumer.commit()
    finally:
        await consumer.stop()
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
