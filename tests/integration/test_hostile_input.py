"""Hostile input through the CLI and straight into the topic: each is refused with a clear
reason (exit 2, or the DLQ with a `dlq_reason` header), and valid traffic around it persists."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.clock import SystemClock, uuid4_event_id
from chat_outbox.adapters.codec import FastEnvelopeCodec
from chat_outbox.adapters.kafka import dlq_topic, ensure_topics
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.adapters.sql.tables import outbox_messages
from chat_outbox.application.operate.operations import read_history
from chat_outbox.application.record.recording import record_chat_message
from chat_outbox.domain import ChatMessage, Role
from tests.integration.conftest import fast_kafka_options
from tests.integration.hostile_records import CONVERSATION, HOSTILE, Hostile, document
from tests.integration.kafka_helpers import count_by_status, read_topic, unique_names

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("migrated_engine", ["postgresql"], indirect=True),
]

SEND = ["send", "--user-id", "7", "--conversation-id", "c", "--role", "user", "--message"]
TEN_MB = 10 * 1024 * 1024


def cli(
    engine: AsyncEngine,
    *args: str | bytes,
    stdin: bytes | None = None,
    timeout: float = 60,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_OUTBOX_")}
    environment["CHAT_OUTBOX_DATABASE_URL"] = engine.url.render_as_string(hide_password=False)
    environment.update({"CHAT_OUTBOX_LOG_FORMAT": "json", **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "chat_outbox", *args],
        env=environment, input=stdin, capture_output=True, timeout=timeout,
    )  # fmt: skip


async def outbox_count(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(outbox_messages)) or 0)


CLI_CASES: list[tuple[str, list[str | bytes], bytes | None, str]] = [
    ("user id not a number", [*SEND[:2], "abc", *SEND[3:], "x"], None, "invalid int value: 'abc'"),
    ("user id a float", [*SEND[:2], "1.5", *SEND[3:], "x"], None, "invalid int value: '1.5'"),
    ("missing role", [*SEND[:5], "--message", "x"], None, "arguments are required: --role"),
    ("extra argument", [*SEND, "x", "--colour", "red"], None, "unrecognized arguments: --colour"),
    ("empty conversation id", [*SEND[:4], "", *SEND[5:], "x"], None, "1-128 characters, got 0"),
    ("unknown role", [*SEND[:6], "robot", "--message", "x"], None, "invalid choice: 'robot'"),
    ("zero user id", [*SEND[:2], "0", *SEND[3:], "x"], None, "user_id must be positive, got 0"),
    ("negative user id", [*SEND[:2], "-5", *SEND[3:], "x"], None, "must be positive, got -5"),
    ("user id over 64 bits", [*SEND[:2], "9" * 30, *SEND[3:], "x"], None, "fit in 64 bits"),
    ("long conversation id", [*SEND[:4], "c" * 10_000, *SEND[5:], "x"], None, "got 10000"),
    ("over the size limit", [*SEND, "-"], b"x" * 600_000, "over the limit of 524288 bytes"),
    ("10 MB body", [*SEND, "-"], b"x" * TEN_MB, "over the limit of 524288 bytes"),
    ("invalid utf-8 on stdin", [*SEND, "-"], b"ab\xffcd", "message is not valid UTF-8 at byte 2"),
    ("invalid utf-8 in argv", [*SEND[:4], b"c\xff", *SEND[5:], "x"], None, "not valid UTF-8"),
    ("lone surrogate bytes", [*SEND, "-"], b"\xed\xa0\x80", "not valid UTF-8 at byte 0"),
    ("NUL byte", [*SEND, "-"], b"a\x00b", "message contains a NUL character at index 1"),
    ("escape sequence", [*SEND, "\x1b[2Jgone"], None, "control character U+001B at index 0"),
    ("bell in conversation", [*SEND[:4], "c\x07", *SEND[5:], "x"], None, "character '\\x07'"),
]


@pytest.mark.parametrize(
    ("args", "stdin", "reason"),
    [case[1:] for case in CLI_CASES],
    ids=[case[0] for case in CLI_CASES],
)
async def test_hostile_send_exits_2_with_one_line_and_records_nothing(
    engine: AsyncEngine, args: list[str | bytes], stdin: bytes | None, reason: str
) -> None:
    """Each hostile `send` exits 2 with one stderr line naming the problem, no traceback,
    and no outbox row (a NUL byte never reaches PostgreSQL, which would refuse it)."""
    result = await asyncio.to_thread(cli, engine, *args, stdin=stdin)
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 2, stderr
    assert reason in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert await outbox_count(engine) == 0


async def test_sql_metacharacters_are_stored_verbatim(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory
) -> None:
    """A conversation id and message full of SQL metacharacters are recorded as plain text."""
    conversation = "x'); DROP TABLE agent_outbox_messages; --\\%_\""
    message = "'; DELETE FROM chat_history_messages WHERE '1'='1"
    result = await asyncio.to_thread(cli, engine, *SEND[:4], conversation, *SEND[5:], message)
    assert result.returncode == 0, result.stderr
    async with engine.connect() as connection:
        stored = await connection.scalar(text("SELECT message_key FROM agent_outbox_messages"))
    assert stored == conversation


async def produce(bootstrap: str, topic: str, records: list[tuple[str, Hostile | bytes]]) -> None:
    """Produce in the given order; a hostile record carries a `case` header naming it."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=12_000_000)
    await producer.start()
    try:
        for name, record in records:
            if isinstance(record, Hostile):
                await producer.send_and_wait(
                    topic, record.value, key=record.key, headers=[("case", name.encode())]
                )
            else:
                await producer.send_and_wait(topic, record, key=CONVERSATION.encode())
    finally:
        await producer.stop()


async def record_valid(uow: SqlUnitOfWorkFactory, topic: str, count: int) -> list[bytes]:
    """Record `count` messages in the outbox; return the records the relay would send."""
    values = []
    async with uow() as unit:
        for n in range(count):
            chat = ChatMessage(7, CONVERSATION, Role.USER, f"valid #{n}")
            row = await record_chat_message(
                unit, chat, topic=topic, clock=SystemClock(), event_ids=uuid4_event_id
            )
            values.append(FastEnvelopeCodec().encode(row))
        await unit.commit()
    return values


async def test_hostile_records_are_dead_lettered_with_reasons_and_valid_ones_persist(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory, kafka_bootstrap: str
) -> None:
    """Every hostile record, interleaved with valid ones on one partition, lands in the DLQ
    once with its reason; a `consume` process persists all valid records around them and
    exits 0 on idle, so nothing crashed, wedged or was silently dropped."""
    topic, group = unique_names("hostile")
    await ensure_topics(fast_kafka_options(kafka_bootstrap), topic)
    valid = await record_valid(uow, topic, len(HOSTILE) + 2)
    forgery = document(message="a forged payload")
    forgery["event_id"] = json.loads(valid[0])["event_id"]
    forged = Hostile("forged duplicate", json.dumps(forgery).encode(), "with a different payload")
    cases = [*HOSTILE, forged]
    stream: list[tuple[str, Hostile | bytes]] = [("valid", valid[0])]
    for index, case in enumerate(cases):
        stream += [(case.case, case), ("valid", valid[index + 1])]
    await produce(kafka_bootstrap, topic, [*stream[:-1], ("valid", valid[-1])])

    env = {
        "CHAT_OUTBOX_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "CHAT_OUTBOX_TOPIC": topic,
        "CHAT_OUTBOX_CONSUMER_GROUP": group,
        "CHAT_OUTBOX_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "CHAT_OUTBOX_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "CHAT_OUTBOX_KAFKA_REBALANCE_TIMEOUT_MS": "2000",
        "CHAT_OUTBOX_KAFKA_FETCH_MAX_WAIT_MS": "10",
        "CHAT_OUTBOX_CONSUMER_BATCH_SIZE": "7",  # hostile records land in several batches
    }
    result = await asyncio.to_thread(
        cli, engine, "consume", "--idle-exit", "3", timeout=180, env=env
    )
    log = result.stderr.decode(errors="replace")
    assert result.returncode == 0, log[-3000:]

    parked = await read_topic(kafka_bootstrap, dlq_topic(topic), expected=len(cases))
    reasons = {
        dict(r.headers)["case"].decode(): dict(r.headers)["dlq_reason"].decode() for r in parked
    }
    assert len(parked) == len(cases), sorted(reasons)
    for case in cases:
        assert case.reason in reasons[case.case], (case.case, reasons[case.case])
    assert await count_by_status(engine) == {"consumed": len(valid)}
    history = await read_history(uow, CONVERSATION)
    assert [e.message for e in history] == [f"valid #{n}" for n in range(len(valid))]
