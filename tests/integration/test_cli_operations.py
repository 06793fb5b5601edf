"""The operator commands as real processes on SQLite, PostgreSQL and MariaDB: dead show and
list, requeue by death time (then released in order), batched purge, and their audit lines."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox import Event, EventType
from chat_outbox.adapters.clock import SystemClock, uuid4_event_id
from chat_outbox.adapters.memory import InMemoryBus
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.application.record.recording import event_row
from chat_outbox.application.relay.loop import run_relay
from chat_outbox.domain import Envelope, OutboxStatus, handler_failed
from tests.integration.databases import fresh_migrated_engine
from tests.integration.relays import leasing_relay
from tests.integration.test_cli import chat_outbox
from tests.integration.test_sql_operations import CUTOFF, LATER, NOW, T0, rows, seed

pytestmark = pytest.mark.integration


def run(engine: AsyncEngine, tmp_path: Path, *args: str, **env: str) -> Any:
    """Run the CLI against the test database; return its stdout lines and audit lines."""
    url = engine.url.render_as_string(hide_password=False)
    result = chat_outbox(*args, cwd=tmp_path, env={"CHAT_OUTBOX_DATABASE_URL": url, **env})
    assert result.returncode == 0, result.stderr
    logs = [json.loads(line) for line in result.stderr.splitlines()]
    audits = [line for line in logs if line["event"] == "audit"]
    return [json.loads(line) for line in result.stdout.splitlines()], audits


async def test_dead_show_and_list_give_the_row_its_error_and_what_it_holds(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory, tmp_path: Path
) -> None:
    """`dead show` prints the full row with its payload; `dead list` the held count."""
    dead = await seed(uow, OutboxStatus.DEAD, T0, conversation="c-show")
    await seed(uow, OutboxStatus.PENDING, T0, conversation="c-show")

    [shown], _ = run(engine, tmp_path, "dead", "show", str(dead), "--json")
    [listed], _ = run(engine, tmp_path, "dead", "list", "--json", "--conversation", "c-show")

    assert shown["payload"] == {
        "user_id": 7, "conversation_id": "c-show", "role": "user", "message": "hi",
    }  # fmt: skip
    assert (shown["status"], shown["retry_count"], shown["last_error"]) == ("dead", 2, "bad")
    assert shown["died_at"] == shown["created_at"] == T0.isoformat()
    assert (listed["id"], listed["held_behind"], listed["last_error"]) == (dead, 1, "bad")
    assert listed["age_s"] > 0


async def test_requeue_by_death_time_moves_only_rows_that_died_in_range_then_in_order(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory, tmp_path: Path
) -> None:
    """`--since/--until` requeues the row that died in range, audited with its count; the
    relay then publishes its conversation in recording order, and no other."""
    await seed(uow, OutboxStatus.DEAD, T0, conversation="early")
    in_range = await seed(uow, OutboxStatus.DEAD, LATER, conversation="mid")
    held = [await seed(uow, OutboxStatus.PENDING, LATER, conversation="mid") for _ in range(2)]
    await seed(uow, OutboxStatus.DEAD, NOW, conversation="late")

    output, audits = run(
        engine, tmp_path, "dead", "requeue",
        "--since", CUTOFF.isoformat(), "--until", NOW.isoformat(),
        USER="operator-7",
    )  # fmt: skip

    assert output == [{"requeued": 1}]
    [audit] = audits
    assert (audit["action"], audit["count"], audit["user"]) == ("dead_requeue", 1, "operator-7")
    assert audit["selector"] == {"died_since": CUTOFF.isoformat(), "died_until": NOW.isoformat()}
    bus = InMemoryBus()
    await run_relay(leasing_relay(uow, bus, SystemClock()), asyncio.Event(), once=True)
    assert [Envelope.decode(record.value or b"").outbox_id for record in bus.log] == [
        in_range,
        *held,
    ]
    statuses = {outbox_id: row["status"] for outbox_id, row in (await rows(engine)).items()}
    assert sorted(statuses.values()).count(OutboxStatus.DEAD) == 2


async def test_purge_deletes_old_consumed_rows_in_configured_batches(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory, tmp_path: Path
) -> None:
    """`purge --older-than` with a batch size of 2 deletes the five old consumed rows only."""
    for _ in range(5):
        await seed(uow, OutboxStatus.CONSUMED, T0)
    kept = [await seed(uow, OutboxStatus.CONSUMED, SystemClock().now())]
    for status in (OutboxStatus.PENDING, OutboxStatus.PUBLISHED, OutboxStatus.DEAD):
        kept.append(await seed(uow, status, T0))

    output, audits = run(
        engine, tmp_path, "purge", "--older-than", "1d", CHAT_OUTBOX_PURGE_BATCH_SIZE="2"
    )

    assert output == [{"deleted": 5}]
    assert [(audit["action"], audit["count"]) for audit in audits] == [("purge", 5)]
    assert sorted(await rows(engine)) == sorted(kept)


async def test_the_relay_process_purges_old_consumed_rows_when_retention_is_set(
    tmp_path: Path,
) -> None:
    """`relay` with CHAT_OUTBOX_RETENTION=1d deletes consumed rows older than a day, beside
    relaying (no broker is needed while nothing is due), and stops cleanly on SIGTERM."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'retention.sqlite3'}"
    engine = await fresh_migrated_engine(url)
    try:
        uow = SqlUnitOfWorkFactory(engine)
        old = [await seed(uow, OutboxStatus.CONSUMED, T0) for _ in range(3)]
        recent = await seed(uow, OutboxStatus.CONSUMED, SystemClock().now())
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_OUTBOX_")}
        env.update(
            CHAT_OUTBOX_DATABASE_URL=url,
            CHAT_OUTBOX_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1",
            CHAT_OUTBOX_KAFKA_CREATE_TOPICS="false",
            CHAT_OUTBOX_RETENTION="1d",
            CHAT_OUTBOX_PURGE_BATCH_SIZE="2",
            CHAT_OUTBOX_LOG_FORMAT="json",
        )
        relay = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chat_outbox", "relay",
            env=env, cwd=tmp_path, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        for _ in range(200):
            if not set(old) & set(await rows(engine)):
                break
            await asyncio.sleep(0.05)
        relay.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(relay.communicate(), 15)
        remaining = sorted(await rows(engine))
    finally:
        await engine.dispose()
    assert relay.returncode == 0, stderr.decode()
    purged = [
        json.loads(line) for line in stderr.decode().splitlines() if "consumed_purged" in line
    ]
    assert [line["rows"] for line in purged] == [3]
    assert remaining == [recent]


async def test_stats_and_dead_list_show_each_rows_event_type(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory, tmp_path: Path
) -> None:
    """A dead event of another type is listed with its type and selected by `--type`;
    `stats --json` counts each type's rows by status."""
    chat_dead = await seed(uow, OutboxStatus.DEAD, T0, conversation="c-type")
    kind = EventType("agent_run.finished")
    async with uow() as unit:
        row = event_row(
            kind, Event(kind.name, "run-1", {"run_id": 1}), event_id=uuid4_event_id(),
            topic="chat", created_at=T0,
        )  # fmt: skip
        added = await unit.outbox.add(row)
        await unit.outbox.apply([handler_failed(added.id, T0, "handler_failed: refused")])
        await unit.commit()

    listed, _ = run(engine, tmp_path, "dead", "list", "--json")
    of_type, _ = run(engine, tmp_path, "dead", "list", "--json", "--type", kind.name)
    [stats], _ = run(engine, tmp_path, "stats", "--json")

    assert [(r["id"], r["type"]) for r in listed] == [
        (chat_dead, "chat_history_persist"),
        (added.id, kind.name),
    ]
    assert [(r["id"], r["last_error"]) for r in of_type] == [(added.id, "handler_failed: refused")]
    assert stats["by_type"] == {
        "agent_run.finished": {"pending": 0, "published": 0, "consumed": 0, "dead": 1},
        "chat_history_persist": {"pending": 0, "published": 0, "consumed": 0, "dead": 1},
    }


def test_dead_list_refuses_a_type_that_is_no_type_name(tmp_path: Path) -> None:
    result = chat_outbox("dead", "list", "--type", "Agent Run!", cwd=tmp_path)
    assert result.returncode == 2
    assert "event type must be dotted lower-case words" in result.stderr
