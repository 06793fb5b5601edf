"""Trace context: captured at record time, stored, sent as a header, restored on consume."""

from __future__ import annotations

import logging
from collections.abc import Iterator, MutableMapping
from typing import Any

import attrs
import pytest
import structlog
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from chat_outbox.adapters.tracing import OpenTelemetryTracing, available_tracing
from chat_outbox.application.record.recording import RecordChatMessage
from chat_outbox.application.tracing import LogContextOnly, valid_traceparent
from tests.unit.conftest import TOPIC, Harness, chat

pytestmark = pytest.mark.unit

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{SPAN_ID}-01"


@attrs.define
class FixedTracing(LogContextOnly):
    """A tracing port whose active context is a given traceparent."""

    active: str | None = TRACEPARENT

    def current(self) -> str | None:
        return self.active


@pytest.fixture
def logged() -> Iterator[list[MutableMapping[str, Any]]]:
    """Log lines with the structlog context merged in, as production renders them."""
    capture = structlog.testing.LogCapture()
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, capture])
    logging.getLogger("chat_outbox.application.consume.consuming").setLevel(logging.DEBUG)
    try:
        yield capture.entries
    finally:
        logging.getLogger("chat_outbox.application.consume.consuming").setLevel(logging.NOTSET)
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()


def record_use_case(harness: Harness, tracing: LogContextOnly) -> RecordChatMessage:
    return RecordChatMessage(harness.uow, harness.clock, harness.event_ids, TOPIC, tracing=tracing)


@pytest.mark.parametrize(
    "value",
    [
        f"00-{'0' * 32}-{SPAN_ID}-01",
        f"00-{TRACE_ID}-{'0' * 16}-01",
        f"ff-{TRACE_ID}-{SPAN_ID}-01",
        f"00-{TRACE_ID}-{SPAN_ID}",
        "not a traceparent",
        "",
    ],
)
def test_a_malformed_traceparent_is_ignored(value: str) -> None:
    """All-zero ids, version ff, missing parts and junk are not trace context."""
    assert valid_traceparent(value) is None


def test_a_well_formed_traceparent_is_kept_in_lower_case() -> None:
    """A valid traceparent passes, normalised to lower case."""
    assert valid_traceparent(TRACEPARENT.upper()) == TRACEPARENT


async def test_recording_captures_the_active_trace_context(harness: Harness) -> None:
    """Without an explicit traceparent, the row gets the active context's."""
    message = await record_use_case(harness, FixedTracing())(chat())
    assert harness.row(message.id).traceparent == TRACEPARENT


async def test_an_explicit_traceparent_wins_over_the_active_one(harness: Harness) -> None:
    """A traceparent given by the caller (an HTTP header, `send --traceparent`) is stored."""
    explicit = f"00-{'a' * 32}-{'b' * 16}-01"
    message = await record_use_case(harness, FixedTracing())(chat(), traceparent=explicit)
    assert harness.row(message.id).traceparent == explicit


async def test_the_relay_sends_the_traceparent_as_a_header(harness: Harness) -> None:
    """The published record carries the stored traceparent in a `traceparent` header."""
    await record_use_case(harness, FixedTracing())(chat())
    await harness.relay().relay_due()
    assert dict(harness.bus.log[0].headers)["traceparent"] == TRACEPARENT.encode()


async def test_an_untraced_message_gets_no_traceparent_header(harness: Harness) -> None:
    """Nothing traced, nothing stored and no header."""
    message = await record_use_case(harness, FixedTracing(active=None))(chat())
    await harness.relay().relay_due()
    assert harness.row(message.id).traceparent is None
    assert "traceparent" not in dict(harness.bus.log[0].headers)


async def test_the_consumer_logs_a_message_in_its_recorded_trace_context(
    harness: Harness, logged: list[MutableMapping[str, Any]]
) -> None:
    """The consumer's line for a persisted message carries the traceparent it was recorded
    under, and the context is unbound again afterwards."""
    await record_use_case(harness, FixedTracing())(chat())
    await record_use_case(harness, FixedTracing(active=None))(chat("conv-2"))
    await harness.relay().relay_due()
    await harness.consumer().consume_batch(timeout=0)
    lines = {
        line["conversation_id"]: line for line in logged if line["event"] == "message_consumed"
    }
    assert lines["conv-1"]["traceparent"] == TRACEPARENT
    assert "traceparent" not in lines["conv-2"]
    assert "traceparent" not in structlog.contextvars.get_contextvars()


async def test_a_dead_lettered_record_is_logged_in_its_trace_context(
    harness: Harness, logged: list[MutableMapping[str, Any]]
) -> None:
    """The dead-letter line for an undecodable traced record carries its traceparent."""
    harness.bus.produce_raw(b"not json")
    harness.bus.log[0] = attrs.evolve(
        harness.bus.log[0], headers=(("traceparent", TRACEPARENT.encode()),)
    )
    await harness.consumer().consume_batch(timeout=0)
    (line,) = [line for line in logged if line["event"] == "record_dead_lettered"]
    assert line["traceparent"] == TRACEPARENT


def test_opentelemetry_tracing_captures_the_current_span() -> None:
    """With opentelemetry-api, the active span's context becomes the traceparent."""
    context = SpanContext(
        int(TRACE_ID, 16), int(SPAN_ID, 16), is_remote=False, trace_flags=TraceFlags(1)
    )
    with trace.use_span(NonRecordingSpan(context)):
        assert OpenTelemetryTracing().current() == TRACEPARENT
    assert OpenTelemetryTracing().current() is None


def test_opentelemetry_tracing_restores_the_context_while_handling() -> None:
    """Inside restored(), the current span context is the recorded one; outside, it is not."""
    tracing = available_tracing()
    assert isinstance(tracing, OpenTelemetryTracing)
    with tracing.restored(TRACEPARENT):
        restored = trace.get_current_span().get_span_context()
        assert f"{restored.trace_id:032x}" == TRACE_ID
        assert f"{restored.span_id:016x}" == SPAN_ID
    assert not trace.get_current_span().get_span_context().is_valid
