"""Logging: one canonical line per relay and consumed batch; stdlib loggers rendered by the
same structlog processors, as JSON and on the console."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from chat_outbox.domain import PublishFailure
from chat_outbox.entrypoints.log_setup import configure_logging
from tests.unit.conftest import Harness, failing

pytestmark = pytest.mark.unit

TIMINGS = {"claim_ms", "publish_ms", "settle_ms"}
LOUD = {"warning", "error", "critical"}


async def test_a_relay_batch_logs_one_line_with_counts_and_timings(harness: Harness) -> None:
    """Three messages, one failing fatally: one relay_batch line, not one per message."""
    for conversation in ("a", "b", "c"):
        await harness.record(conversation)
    harness.bus.fail_with = failing(PublishFailure.fatal("too big"), lambda r: r.key == "b")
    with structlog.testing.capture_logs() as logs:
        await harness.relay().relay_due()
    [line] = [entry for entry in logs if entry["event"] == "relay_batch"]
    assert {k: line[k] for k in ("claimed", "published", "retried", "dead")} == {
        "claimed": 3,
        "published": 2,
        "retried": 0,
        "dead": 1,
    }
    assert line.keys() >= TIMINGS
    assert all(line[name] >= 0 for name in TIMINGS)


async def test_a_batch_of_retryable_failures_logs_one_warning_with_the_first_error(
    harness: Harness,
) -> None:
    """Five messages failing at a broker outage: one warning-or-above line for the batch,
    carrying the counts and the first error, not one per message."""
    for conversation in "abcde":
        await harness.record(conversation)
    harness.bus.fail_with = failing(PublishFailure("broker unreachable"))
    with structlog.testing.capture_logs() as logs:
        await harness.relay().relay_due()
    [line] = [entry for entry in logs if entry["log_level"] in LOUD]
    assert (line["event"], line["retried"], line["dead"]) == ("relay_batch", 5, 0)
    assert line["first_error"] == "broker unreachable"


@pytest.mark.parametrize(
    ("failure", "max_retry"),
    [(PublishFailure.fatal("too big"), 20), (PublishFailure("broker unreachable"), 1)],
)
async def test_each_message_going_dead_is_logged_loudly_with_its_outbox_id(
    harness: Harness, failure: PublishFailure, max_retry: int
) -> None:
    """A message that goes dead (a fatal failure, or its last retry) has its own line, at
    warning or above, naming its outbox id; its batch-mates that were published do not."""
    await harness.record("a")
    doomed = await harness.record("b", max_retry=max_retry)
    harness.bus.fail_with = failing(failure, lambda record: record.key == "b")
    with structlog.testing.capture_logs() as logs:
        await harness.relay().relay_due()
    [line] = [entry for entry in logs if entry["log_level"] in LOUD and "outbox_id" in entry]
    assert (line["event"], line["outbox_id"]) == ("message_dead", doomed.id)


async def test_a_consumed_batch_logs_one_line_with_counts_and_timings(harness: Harness) -> None:
    """A batch with a duplicate and a malformed record logs its counts once."""
    for conversation in ("a", "b"):
        await harness.record(conversation)
    await harness.relay().relay_due()
    harness.bus.log.append(harness.bus.log[0])  # a redelivery
    harness.bus.produce_raw(b"not json")
    with structlog.testing.capture_logs() as logs:
        await harness.consumer().consume_batch(0.0)
    [line] = [entry for entry in logs if entry["event"] == "consume_batch"]
    assert {k: line[k] for k in ("received", "persisted", "duplicates", "dead_lettered")} == {
        "received": 4,
        "persisted": 2,
        "duplicates": 1,
        "dead_lettered": 1,
    }
    assert {"fetch_ms", "decode_ms", "persist_ms", "ack_ms"} <= line.keys()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state: put it back after the test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def configured(log_format: str, level: str = "info") -> io.StringIO:
    stream = io.StringIO()
    configure_logging(log_format, level, stream)
    return stream


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("name", ["aiokafka.conn", "sqlalchemy.pool", "alembic", "uvicorn.error"])
def test_stdlib_records_render_as_json_lines_like_structlog_ones(name: str) -> None:
    """A library's warning becomes one JSON object with the same keys as our own lines."""
    stream = configured("json")
    logging.getLogger(name).warning("connection to %s lost", "node-1")
    structlog.get_logger("tests.ours").warning("ours", n=1)
    theirs, ours = (json.loads(line) for line in stream.getvalue().splitlines())
    assert theirs["event"] == "connection to node-1 lost"
    assert (theirs["level"], theirs["logger"]) == ("warning", name)
    assert set(ours) - {"n"} == set(theirs)


@pytest.mark.usefixtures("restore_logging")
def test_stdlib_records_render_on_the_console_like_structlog_ones() -> None:
    """In console format a library's line carries the same level and logger columns."""
    stream = configured("console")
    logging.getLogger("aiokafka.conn").warning("connection lost")
    structlog.get_logger("tests.ours").warning("ours", n=1)
    theirs, ours = stream.getvalue().splitlines()
    for line, event, logger in (
        (theirs, "connection lost", "aiokafka.conn"),
        (ours, "ours", "tests.ours"),
    ):
        assert "[warning  ]" in line
        assert event in line
        assert f"[{logger}]" in line
    assert not theirs.startswith("{")


@pytest.mark.usefixtures("restore_logging")
def test_library_info_chatter_is_hidden_unless_debugging() -> None:
    """aiokafka and SQLAlchemy info lines are dropped at level info, kept at debug."""
    stream = configured("json", "info")
    logging.getLogger("sqlalchemy.engine").info("SELECT 1")
    assert stream.getvalue() == ""
    stream = configured("json", "debug")
    logging.getLogger("sqlalchemy.engine").info("SELECT 1")
    assert json.loads(stream.getvalue())["event"] == "SELECT 1"


@pytest.mark.usefixtures("restore_logging")
def test_audit_lines_are_kept_when_the_level_is_warning() -> None:
    """Operator audits survive CHAT_OUTBOX_LOG_LEVEL=warning; other info lines do not."""
    stream = configured("json", "warning")
    structlog.get_logger("tests.chatty").info("not shown")
    structlog.get_logger("chat_outbox.entrypoints.audit").info("audit", action="purge")
    [line] = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert (line["event"], line["action"]) == ("audit", "purge")
