"""Hostile records through a live `consume` process, on Kafka and on RabbitMQ: records
nested 1,000 levels deep, huge integers, invalid and odd unicode, and forgeries of outbox
rows go to the DLQ with a reason that quotes no chat text, and the valid records behind
them reach chat history; the process neither crashes nor wedges (it exits 0 on idle)."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.application.operate.operations import read_history
from chat_outbox.application.ports import OutgoingRecord
from tests.integration.buses import RABBITMQ_QUEUES, KafkaHarness, RabbitHarness
from tests.integration.hostile_records import CONVERSATION, document
from tests.integration.kafka_helpers import count_by_status
from tests.integration.test_hostile_input import cli, record_valid

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("migrated_engine", ["postgresql"], indirect=True),
]

SECRET = "SECRET-chat-text-91bd"


def raw_field(name: str, raw: str) -> bytes:
    """A valid-looking envelope whose field `name` is the raw JSON text `raw`."""
    return json.dumps(document(**{name: "@@RAW@@"})).replace('"@@RAW@@"', raw).encode()


def hostile_cases(spare: bytes, valid: bytes) -> list[tuple[bytes, str]]:
    """(record, what its DLQ reason must say). `spare` is a recorded row never delivered,
    whose event id a forgery reuses with other text under `valid`'s row."""
    first, second = json.loads(spare), json.loads(valid)
    reused = {**first, "outbox_id": second["outbox_id"]}
    reused["payload"] = {**first["payload"], "message": f"{SECRET} reused"}
    orphan = {**second, "event_id": "00000000-0000-0000-0000-0000000000ff", "outbox_id": 10**9}
    orphan["payload"] = {**second["payload"], "message": f"{SECRET} orphan"}
    return [
        (b"[" * 1000 + b"]" * 1000, "nested too deeply"),
        (raw_field("payload", "[" * 1000 + "]" * 1000), "nested too deeply"),
        (raw_field("user_id", "7" * 5000), "too many digits"),
        (raw_field("outbox_id", "1" * 4301), "too many digits"),
        (raw_field("message", json.dumps(f"{SECRET}\ud800")), "lone surrogate"),
        (raw_field("message", f'"{SECRET}\x00"'), "not JSON"),
        (f'{{"message": "{SECRET}\udfff"}}'.encode("utf-8", "surrogatepass"), "not valid UTF-8"),
        (json.dumps(reused).encode(), "forged_or_stale: outbox row"),
        (json.dumps(orphan).encode(), "forged_or_stale: no outbox row"),
    ]


@pytest.fixture(params=["kafka", "rabbitmq"])
def endpoint(request: pytest.FixtureRequest) -> tuple[str, str]:
    """A broker bus's name and where it listens (the bus_endpoint fixture, without memory)."""
    fixture = "kafka_bootstrap" if request.param == "kafka" else "rabbitmq_url"
    return request.param, request.getfixturevalue(fixture)


async def test_a_consume_process_parks_hostile_records_and_persists_those_behind(
    engine: AsyncEngine, uow: SqlUnitOfWorkFactory, endpoint: tuple[str, str]
) -> None:
    """Each hostile record, interleaved with valid ones, lands in the DLQ once with its
    reason; every valid record is in history and consumed; the process exits 0."""
    harness: KafkaHarness | RabbitHarness
    bus_name, address = endpoint
    if bus_name == "kafka":
        bootstrap = address
        harness = KafkaHarness(bootstrap)
        env = {
            "CHAT_OUTBOX_BUS": "kafka",
            "CHAT_OUTBOX_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "CHAT_OUTBOX_CONSUMER_GROUP": harness.group,
            "CHAT_OUTBOX_KAFKA_SESSION_TIMEOUT_MS": "6000",
            "CHAT_OUTBOX_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
            "CHAT_OUTBOX_KAFKA_REBALANCE_TIMEOUT_MS": "2000",
            "CHAT_OUTBOX_KAFKA_FETCH_MAX_WAIT_MS": "10",
        }
    else:
        harness = RabbitHarness(address)
        env = {
            "CHAT_OUTBOX_BUS": "rabbitmq",
            "CHAT_OUTBOX_RABBITMQ_URL": harness.url,
            "CHAT_OUTBOX_RABBITMQ_QUEUES": str(RABBITMQ_QUEUES),
        }
    env.update({"CHAT_OUTBOX_TOPIC": harness.topic, "CHAT_OUTBOX_CONSUMER_BATCH_SIZE": "4"})
    try:
        cases = 9
        valid = await record_valid(uow, harness.topic, cases + 2)
        spare = valid.pop()
        hostile = hostile_cases(spare, valid[1])
        assert len(hostile) == cases
        stream = [valid[0]]
        for index, (value, _) in enumerate(hostile):
            stream += [value, valid[index + 1]]
        bus = harness.bus()
        records = [OutgoingRecord(harness.topic, CONVERSATION, value) for value in stream]
        assert await bus.publish(records) == [None] * len(records)

        result = await asyncio.to_thread(
            cli, engine, "consume", "--idle-exit", "3", timeout=180, env=env
        )
        log = result.stderr.decode(errors="replace") + result.stdout.decode(errors="replace")
        assert result.returncode == 0, log[-3000:]

        parked = await harness.dead_letters(expected=cases)
        reasons = {value: headers["dlq_reason"].decode() for value, headers in parked}
        assert len(parked) == cases
        for value, reason in hostile:
            assert reason in reasons[value], (reason, reasons[value])
        assert [r for r in reasons.values() if SECRET in r] == []
        assert SECRET not in log
        assert await count_by_status(engine) == {"consumed": len(valid), "pending": 1}
        history = await read_history(uow, CONVERSATION)
        assert [e.message for e in history] == [f"valid #{n}" for n in range(len(valid))]
    finally:
        await harness.close()
