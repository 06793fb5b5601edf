"""The baseline relay: a minimal hand-written asyncpg + aiokafka loop.

BEGIN; SELECT .. FOR UPDATE SKIP LOCKED LIMIT 500; send all + gather (acks=all);
UPDATE .. SET status='published' WHERE id = ANY($1); COMMIT. Polls every 50 ms when idle,
or with --listen waits for a NOTIFY on bench_outbox with the 50 ms poll as a fallback.
With --linger-ms 0 it is the minimal loop the drain also compares against.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC

import asyncpg  # type: ignore[import-untyped]
from aiokafka import AIOKafkaProducer

from bench.baseline_common import arguments, stop_event
from bench.settings import NOTIFY_CHANNEL, POLL_S

CLAIM = """
SELECT id, event_id, biz_type, message_key, payload, created_at
FROM agent_outbox_messages
WHERE status = 'pending' AND next_retry_at <= (now() AT TIME ZONE 'UTC')
ORDER BY id LIMIT $1
FOR UPDATE SKIP LOCKED
"""
MARK = """
UPDATE agent_outbox_messages
SET status = 'published', published_at = (now() AT TIME ZONE 'UTC')
WHERE id = ANY($1::bigint[])
"""


def envelope(row: asyncpg.Record) -> bytes:
    occurred = row["created_at"].replace(tzinfo=UTC).isoformat()
    return (
        f'{{"event_id":"{row["event_id"]}","type":"{row["biz_type"]}","schema_version":1,'
        f'"occurred_at":"{occurred}","key":{json.dumps(row["message_key"])},'
        f'"outbox_id":{row["id"]},"payload":{row["payload"]}}}'
    ).encode()


async def relay_once(
    conn: asyncpg.Connection, producer: AIOKafkaProducer, topic: str, batch: int
) -> int:
    async with conn.transaction():
        rows = await conn.fetch(CLAIM, batch)
        if not rows:
            return 0
        futures = [
            await producer.send(
                topic,
                value=envelope(row),
                key=row["message_key"].encode(),
                headers=[
                    ("event_id", row["event_id"].encode()),
                    ("biz_type", row["biz_type"].encode()),
                    ("schema_version", b"1"),
                ],
            )
            for row in rows
        ]
        await asyncio.gather(*futures)
        await conn.execute(MARK, [row["id"] for row in rows])
    return len(rows)


async def main() -> None:
    args = arguments(__doc__ or "")
    stopping = stop_event()
    conn = await asyncpg.connect(args.dsn)
    wake = asyncio.Event()
    listener = None
    if args.listen:
        listener = await asyncpg.connect(args.dsn)
        await listener.add_listener(NOTIFY_CHANNEL, lambda *_: wake.set())
    producer = AIOKafkaProducer(
        bootstrap_servers=args.bootstrap, acks="all", linger_ms=args.linger_ms
    )
    await producer.start()
    try:
        while not stopping.is_set():
            if await relay_once(conn, producer, args.topic, args.batch):
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), POLL_S)
            wake.clear()
    finally:
        await producer.stop()
        await conn.close()
        if listener is not None:
            await listener.close()


if __name__ == "__main__":
    asyncio.run(main())
