"""`python -m chaos --bounds`: does a relay's memory grow with the backlog? Peak RSS of one
`chat-outbox relay` process draining from 10k and from 1M pending rows on PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import attrs

from chaos import database
from chaos.fleet import Fleet, Member, process_env
from chat_outbox.entrypoints.local_broker import LocalBroker

BACKLOGS = (10_000, 1_000_000)
PUBLISH_TARGET = 50_000
"""Rows the relay publishes before it is measured (all of them for a smaller backlog)."""
CONVERSATIONS = 1_000
SEED_SQL = """
INSERT INTO agent_outbox_messages (event_id, biz_type, topic, message_key, payload, status,
    retry_count, max_retry, next_retry_at, created_at, updated_at)
SELECT gen_random_uuid()::text, 'chat_history_persist', $1, 'bounds-' || (i % $2),
    json_build_object('user_id', 1 + i % $2, 'conversation_id', 'bounds-' || (i % $2),
        'role', 'user', 'message', 'backlog message #' || i || ' ' || repeat('x', 200))::text,
    'pending', 0, 20, now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc',
    now() AT TIME ZONE 'utc'
FROM generate_series(1, $3) AS i
"""


@attrs.frozen
class Measured:
    backlog: int
    published: int
    seconds: float
    peak_rss_mib: float
    final_rss_mib: float


def rss_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


async def measure_one(url: str, broker: LocalBroker, backlog: int, log_dir: Path) -> Measured:
    topic = f"bounds-{backlog}"
    await database.recreate(url, audit=False)
    async with database.connection(url) as conn:
        await conn.execute(SEED_SQL, topic, CONVERSATIONS, backlog)
        await conn.execute("ANALYZE agent_outbox_messages")
    await broker.create_topic(topic)
    env = process_env(url, broker.bootstrap_servers, topic, 0)
    env["CHAT_OUTBOX_LOG_LEVEL"] = "warning"
    fleet = Fleet(env, log_dir, [Member(f"bounds-relay-{backlog}", "relay")])
    target = min(backlog, PUBLISH_TARGET)
    started = time.monotonic()
    await fleet.start_all()
    process = fleet.members[0].process
    assert process is not None
    try:
        async with database.connection(url) as conn:
            published = 0
            while published < target:
                await asyncio.sleep(1.0)
                fleet.check()
                if fleet.members[0].crashes:
                    raise RuntimeError(f"relay exited: {fleet.members[0].crashes[0]}")
                published = int(
                    await conn.fetchval(
                        "SELECT count(*) FROM agent_outbox_messages WHERE status = 'published'"
                    )
                )
        seconds = time.monotonic() - started
        peak, final = rss_mib(process.pid, "VmHWM"), rss_mib(process.pid, "VmRSS")
    finally:
        with contextlib.suppress(ProcessLookupError):
            await fleet.stop_all()
    return Measured(backlog, published, seconds, peak, final)


async def measure(database_name: str | None) -> str:
    url = database.chaos_url(database_name or "chat_outbox_bounds")
    log_dir = Path("chaos-results") / "bounds"
    log_dir.mkdir(parents=True, exist_ok=True)
    results = []
    async with LocalBroker(log_path=log_dir / "broker.log") as broker:
        for backlog in BACKLOGS:
            results.append(await measure_one(url, broker, backlog, log_dir))
    lines = [
        "relay memory against backlog (one `chat-outbox relay`, PostgreSQL, local broker)",
        f"{'pending rows':>14}{'published':>11}{'seconds':>9}{'peak RSS MiB':>14}"
        f"{'final RSS MiB':>15}",
    ]
    for m in results:
        lines.append(
            f"{m.backlog:>14,}{m.published:>11,}{m.seconds:>9.1f}{m.peak_rss_mib:>14.1f}"
            f"{m.final_rss_mib:>15.1f}"
        )
    ratio = results[-1].peak_rss_mib / results[0].peak_rss_mib
    lines.append(f"peak RSS ratio, 1M vs 10k backlog: {ratio:.2f} (1.00 = no growth)")
    return "\n".join(lines)
